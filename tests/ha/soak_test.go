package ha

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/patroni"
	"github.com/pgherd/pgherd/tests/hacluster"
)

// soakTimings are the timings the soak runs: PGHERD_SOAK_TIMINGS
// (TTL/LOOP_WAIT/RETRY_TIMEOUT, to find the edge), else the fast profile.
func soakTimings(t *testing.T) patroni.Timings {
	t.Helper()
	v := os.Getenv("PGHERD_SOAK_TIMINGS")
	if v == "" {
		tm, err := patroni.TimingProfile(patroni.ProfileFast)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	var tm patroni.Timings
	if _, err := fmt.Sscanf(v, "%d/%d/%d", &tm.TTL, &tm.LoopWait, &tm.RetryTimeout); err != nil {
		t.Fatalf("PGHERD_SOAK_TIMINGS=%q: want TTL/LOOP_WAIT/RETRY_TIMEOUT, such as 10/1/3", v)
	}
	return tm
}

// leaderLog polls the leader key every 250 ms and records every change
// of holder or of creation revision (a leadership lost and taken again).
type leaderLog struct {
	mu      sync.Mutex
	last    hacluster.LeaderKey
	changes []string
	errs    int
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

func watchLeaderKey(ctx context.Context, w *hacluster.LeaderWatcher, first hacluster.LeaderKey) *leaderLog {
	l := &leaderLog{last: first, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			k, err := w.Get(ctx)
			l.mu.Lock()
			switch {
			case err != nil:
				l.errs++
			case k != l.last:
				l.changes = append(l.changes, fmt.Sprintf("%s: leader key %+v → %+v", time.Now().Format("15:04:05.0"), l.last, k))
				l.last = k
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// Stop ends the polling; it may be called more than once.
func (l *leaderLog) Stop() { l.once.Do(func() { close(l.stop) }); <-l.done }

// benchRun is a pgbench running in the background.
type benchRun struct {
	out  bytes.Buffer
	err  error
	done chan struct{}
}

// Wait waits for pgbench to end and returns its error.
func (b *benchRun) Wait() error { <-b.done; return b.err }

// pgbench starts pgbench against node n for d with extra arguments. It is
// killed when the test ends.
func pgbench(t *testing.T, c *hacluster.Cluster, n *hacluster.Node, d time.Duration, extra ...string) *benchRun {
	t.Helper()
	args := append([]string{"-h", n.Host.Addr, "-p", strconv.Itoa(n.PGPort), "-U", "postgres", "-n",
		"-T", strconv.Itoa(int(d.Seconds())), "-P", "60"}, extra...)
	cmd := exec.Command(filepath.Join(hacluster.PGBinDir, "pgbench"), append(args, "postgres")...)
	cmd.Env = []string{"PGPASSWORD=" + c.Creds.Superuser.Reveal(), "PGCONNECT_TIMEOUT=2"}
	b := &benchRun{done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &b.out, &b.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.err = cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

// TestSoakNoFalseFailover is issue 16's soak: two members and a witness
// on the embedded DCS at the fast profile (or PGHERD_SOAK_TIMINGS),
// pgbench on the primary (TPC-B, fsync on) and on the replica (read-only)
// filling both cores, for PGHERD_SOAK_DURATION (default 10m); every
// minute, alternately, a 1.5 GB dd with conv=fsync beside the data
// directories and 5 s of SIGSTOP on the replica's Patroni. The leader key
// must never change: no new holder, no new leadership of the same one.
func TestSoakNoFalseFailover(t *testing.T) {
	if os.Getenv("PGHERD_SOAK") == "" {
		t.Skip("the soak runs for 10 minutes: set PGHERD_SOAK=1 to run it (PGHERD_SOAK_TIMINGS=TTL/LOOP_WAIT/RETRY_TIMEOUT and PGHERD_SOAK_DURATION change it)")
	}
	cred := needReal(t)
	tm := soakTimings(t)
	dur := 10 * time.Minute
	if v := os.Getenv("PGHERD_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute {
			t.Fatalf("PGHERD_SOAK_DURATION=%q: want a duration of a minute or more, such as 10m", v)
		}
		dur = d
	}
	ctx := ctxT(t, dur+10*time.Minute)
	base := baseDir(t)
	c := startCluster(t, ctx, hacluster.Options{Base: base, Pgherd: pgherdBin, Cred: cred, DCS: hacluster.DCSPgherd, Timings: tm})
	prim, err := c.Primary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep := c.Other(prim)

	ini := exec.CommandContext(ctx, filepath.Join(hacluster.PGBinDir, "pgbench"), "-i", "-q", "-s", "10",
		"-h", prim.Host.Addr, "-p", strconv.Itoa(prim.PGPort), "-U", "postgres", "postgres")
	ini.Env = []string{"PGPASSWORD=" + c.Creds.Superuser.Reveal()}
	if out, err := ini.CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	// The replica must have the tables before it is read from.
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}

	w, err := c.WatchLeader()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	first, err := w.Get(ctx)
	if err != nil || first.Holder != prim.Name {
		t.Fatalf("leader key before the soak: %+v, %v (primary %s)", first, err, prim.Name)
	}
	ll := watchLeaderKey(ctx, w, first)
	defer ll.Stop()

	t.Logf("soak: ttl %d / loop_wait %d / retry_timeout %d for %s; primary %s", tm.TTL, tm.LoopWait, tm.RetryTimeout, dur, prim.Name)
	start := time.Now()
	pw := pgbench(t, c, prim, dur, "-c", "4", "-j", "2")
	rw := pgbench(t, c, rep, dur, "-S", "-c", "2", "-j", "1")

	var faults []string
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for i := 0; time.Since(start) < dur-time.Minute; i++ {
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-tick.C:
		}
		if i%2 == 0 {
			f := filepath.Join(base, "burst")
			t0 := time.Now()
			out, err := exec.CommandContext(ctx, "dd", "if=/dev/zero", "of="+f, "bs=1M", "count=1536", "conv=fsync").CombinedOutput()
			os.Remove(f)
			if err != nil {
				t.Fatalf("dd: %v\n%s", err, out)
			}
			faults = append(faults, fmt.Sprintf("dd 1.5 GB fsync %s", time.Since(t0).Round(100*time.Millisecond)))
			continue
		}
		pid := rep.Patroni.PID()
		syscall.Kill(pid, syscall.SIGSTOP)
		time.Sleep(5 * time.Second) // the fault's length, not a wait for a condition
		syscall.Kill(pid, syscall.SIGCONT)
		faults = append(faults, "SIGSTOP replica Patroni 5 s")
	}
	perr, rerr := pw.Wait(), rw.Wait()
	ll.Stop()

	t.Logf("faults: %s", strings.Join(faults, "; "))
	t.Logf("pgbench on the primary (%v):\n%s", perr, tailLines(pw.out.String(), 6))
	t.Logf("pgbench on the replica (%v):\n%s", rerr, tailLines(rw.out.String(), 6))
	t.Logf("leader key read %d times unanswered", ll.errs)
	if gap, at, n, err := longestLeaderLoop(filepath.Join(prim.Dir, "log", "patroni.log"), start); err != nil {
		t.Errorf("reading the primary's loop times: %v", err)
	} else {
		t.Logf("the primary's HA loop (its lease refresh) ran %d times; longest gap %s (ending %s), loop_wait %d s, ttl %d s",
			n, gap.Round(10*time.Millisecond), at.Format("15:04:05"), tm.LoopWait, tm.TTL)
	}
	if len(ll.changes) > 0 {
		t.Fatalf("%d leader changes in %s at ttl %d / loop_wait %d / retry_timeout %d:\n%s",
			len(ll.changes), time.Since(start).Round(time.Second), tm.TTL, tm.LoopWait, tm.RetryTimeout, strings.Join(ll.changes, "\n"))
	}
	if now, err := c.Primary(ctx); err != nil || now != prim {
		t.Fatalf("primary after the soak: %v, %v (was %s)", now, err, prim.Name)
	}
	if perr != nil {
		t.Fatalf("pgbench on the primary failed: %v", perr)
	}
	t.Logf("0 leader changes in %s", time.Since(start).Round(time.Second))
}

// longestLeaderLoop reads a primary's Patroni log and returns the longest
// time between two consecutive "the leader with the lock" lines after
// since (Patroni refreshes its lease once per such loop), when it ended,
// and how many such lines there were.
func longestLeaderLoop(log string, since time.Time) (time.Duration, time.Time, int, error) {
	b, err := os.ReadFile(log)
	if err != nil {
		return 0, time.Time{}, 0, err
	}
	var prev, at time.Time
	var longest time.Duration
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "the leader with the lock") || len(line) < 23 {
			continue
		}
		ts, err := time.ParseInLocation("2006-01-02 15:04:05,000", line[:23], time.Local)
		if err != nil || ts.Before(since) {
			continue
		}
		n++
		if !prev.IsZero() && ts.Sub(prev) > longest {
			longest, at = ts.Sub(prev), ts
		}
		prev = ts
	}
	if n < 2 {
		return 0, time.Time{}, n, fmt.Errorf("%d leader loops logged in %s", n, log)
	}
	return longest, at, n, nil
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
