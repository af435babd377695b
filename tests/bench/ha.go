package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgherd/pgherd/pkg/patroni"
	"github.com/pgherd/pgherd/tests/hacluster"
)

func init() {
	benches = append(benches,
		bench{name: "failover RTO, pgherd witness vs patroni_raft_controller twin", goal: "≤ 1.00", run: benchRTORaft},
		bench{name: "failover RTO, pgherd witness at the default profile (fast, 10/1/3) vs patroni_raft_controller twin at 20/2/5", goal: "≤ 0.50", run: benchRTOFast},
		bench{name: "failover RTO, pgherd witness at the fast profile with host-aware revocation (strict synchronous mode) vs patroni_raft_controller twin at 20/2/5", goal: "≤ 0.35", run: benchRTORevoke},
		bench{name: "failover RTO, pgherd witness vs one-member etcd that survives", goal: "report", run: benchRTOEtcd},
		bench{name: "idle witness RSS vs patroni_raft_controller", goal: "≤ 0.65 (≤ 25 MB)", run: benchWitnessRSS},
	)
}

// haTimings are the Patroni timings, the anchors' "tuned" profile.
var haTimings = patroni.Timings{TTL: 20, LoopWait: 2, RetryTimeout: 5}

// rtoRuns is one setup's failovers and its idle witness RSS.
type rtoRuns struct {
	all, leaderDied, leaderLived []time.Duration
	witnessRSS                   int64
}

// rtoSetup is one measured cluster: its DCS kind and its timings, and
// whether it runs strict synchronous mode with host-aware revocation
// (detect derived from the timings, as site.yaml's default).
type rtoSetup struct {
	kind    hacluster.DCSKind
	timings patroni.Timings
	revoke  bool
}

var rtoCache = map[rtoSetup]*rtoRuns{}

// measureRTO runs one cluster of the given setup: after the idle witness's
// RSS is read, it kills the primary's host (Patroni, postmaster and, with
// pgherd's DCS, its member) h.runs times, timing the first write on the
// survivor each time (with strict synchronous mode, its promotion: a
// two-node cluster's new primary takes no commit until its synchronous
// standby is back), and brings the host back to rejoin before the next
// run. Reusing the cluster moves the Raft leader around, so some runs
// kill it and some do not.
func measureRTO(ctx context.Context, h *harness, setup rtoSetup) (*rtoRuns, error) {
	if r := rtoCache[setup]; r != nil {
		return r, nil
	}
	kind, t := setup.kind, setup.timings
	o := hacluster.Options{DCS: kind, Timings: t}
	name := fmt.Sprintf("ha-%s-%d-%d-%d", kind, t.TTL, t.LoopWait, t.RetryTimeout)
	if setup.revoke {
		o.SynchronousMode, o.SynchronousModeStrict = true, true
		o.FastFailoverDetect = time.Duration(patroni.FastFailoverBounds(t).Default) * time.Second
		name += "-revoke"
	}
	base := filepath.Join(h.work, name)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	// The witness runs from its own copy of the binaries, as on its own
	// host (see Options.WitnessPgherd): pgherd, and the pgherd-dcs beside
	// it that its `dcs serve` execs. Owned by the user that runs them, as
	// pgherd's own binaries are by root, which runs the members `witness
	// add` sets up: the kernel pages out a file's pages only for its owner
	// (or a writer).
	wdir := filepath.Join(base, "witness-bin")
	if err := os.MkdirAll(wdir, 0o755); err != nil {
		return nil, err
	}
	wexe := filepath.Join(wdir, "pgherd")
	for _, from := range []string{h.pgherd, h.pgherd + "-dcs"} {
		to := filepath.Join(wdir, filepath.Base(from))
		if err := copyFile(from, to); err != nil {
			return nil, err
		}
		if h.cred != nil {
			if err := os.Chown(to, int(h.cred.Uid), int(h.cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	o.Base, o.Pgherd, o.WitnessPgherd, o.Cred = base, h.pgherd, wexe, h.cred
	c, err := hacluster.Start(ctx, o)
	if c != nil {
		defer c.Stop()
	}
	if err != nil {
		return nil, err
	}
	r := &rtoRuns{}
	time.Sleep(15 * time.Second) // idle, as the anchors measured (the member pages out its start-up pages after 10 s)
	if c.Witness != nil && kind != hacluster.DCSEtcd {
		if r.witnessRSS, err = vmRSS(c.Witness.PID()); err != nil {
			return nil, err
		}
	}
	for i := 0; i < h.runs; i++ {
		// Every other run, the DCS leader is moved off the primary's
		// host first, so that both cases are measured.
		if i%2 == 1 {
			if p, err := c.Primary(ctx); err == nil {
				if err := c.MoveDCSLeaderOff(ctx, p); err != nil {
					return nil, fmt.Errorf("%s run %d: moving the DCS leader: %w", kind, i+1, err)
				}
			}
		}
		// In synchronous mode only the synchronous standby is promoted.
		if setup.revoke {
			if p, err := c.Primary(ctx); err == nil {
				wctx, cancel := context.WithTimeout(ctx, time.Minute)
				err = c.WaitSyncStandby(wctx, c.Other(p))
				cancel()
				if err != nil {
					return nil, fmt.Errorf("%s run %d: %w", kind, i+1, err)
				}
			}
		}
		// One full HA loop first, as the anchors did.
		time.Sleep(time.Duration(t.LoopWait+1) * time.Second)
		var f *hacluster.Failover
		if setup.revoke {
			f, err = c.MeasurePromotion(ctx, 90*time.Second, nil)
		} else {
			f, err = c.MeasureFailover(ctx, 90*time.Second)
		}
		if err != nil {
			return nil, fmt.Errorf("%s run %d: %w\n%s", kind, i+1, err, c.Logs())
		}
		fmt.Fprintf(os.Stderr, "bench: %s run %d: %s\n", kind, i+1, f.Describe())
		r.all = append(r.all, f.RTO)
		if f.DCSLeaderDied {
			r.leaderDied = append(r.leaderDied, f.RTO)
		} else {
			r.leaderLived = append(r.leaderLived, f.RTO)
		}
		if err := c.StartHost(f.Old); err != nil {
			return nil, err
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err = c.WaitHealthy(wctx)
		if err == nil {
			err = c.WaitDCSHealthy(wctx, time.Minute)
		}
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s run %d: rejoin: %w\n%s", kind, i+1, err, c.Logs())
		}
	}
	rtoCache[setup] = r
	return r, nil
}

// measurePair measures the pgherd cluster at timings mine and the
// reference cluster kind at haTimings (each once per bench run:
// measureRTO caches them).
func measurePair(ctx context.Context, h *harness, t patroni.Timings, kind hacluster.DCSKind) (mine, ref *rtoRuns, err error) {
	if mine, err = measureRTO(ctx, h, rtoSetup{kind: hacluster.DCSPgherd, timings: t}); err != nil {
		return nil, nil, err
	}
	if ref, err = measureRTO(ctx, h, rtoSetup{kind: kind, timings: haTimings}); err != nil {
		return nil, nil, err
	}
	return mine, ref, nil
}

func benchRTORaft(ctx context.Context, h *harness) (result, error) {
	mine, ref, err := measurePair(ctx, h, haTimings, hacluster.DCSRaft)
	if err != nil {
		return result{}, err
	}
	note := fmt.Sprintf("ttl 20/loop_wait 2/retry_timeout 5; pgherd runs %s, twin runs %s; pgherd runs where the killed DCS member led Raft: %s, where it did not: %s",
		list(mine.all), list(ref.all), medianOf(mine.leaderDied), medianOf(mine.leaderLived))
	return result{pgherd: median(mine.all), reference: median(ref.all), runs: h.runs, note: note}, nil
}

func benchRTOEtcd(ctx context.Context, h *harness) (result, error) {
	mine, ref, err := measurePair(ctx, h, haTimings, hacluster.DCSEtcd)
	if err != nil {
		return result{}, err
	}
	note := fmt.Sprintf("etcd runs %s; the etcd member is on no data host, so no kill touches the DCS", list(ref.all))
	return result{pgherd: median(mine.all), reference: median(ref.all), runs: h.runs, note: note}, nil
}

// benchRTOFast is the host-death RTO at pgherd's fast timing profile
// beside the twin at the anchors' tuned timings.
func benchRTOFast(ctx context.Context, h *harness) (result, error) {
	fast, err := patroni.TimingProfile(patroni.ProfileFast)
	if err != nil {
		return result{}, err
	}
	mine, ref, err := measurePair(ctx, h, fast, hacluster.DCSRaft)
	if err != nil {
		return result{}, err
	}
	note := fmt.Sprintf("pgherd at ttl %d/loop_wait %d/retry_timeout %d (patroni.timing: fast), twin at 20/2/5; pgherd runs %s, twin runs %s; pgherd runs where the killed DCS member led Raft: %s, where it did not: %s",
		fast.TTL, fast.LoopWait, fast.RetryTimeout, list(mine.all), list(ref.all), medianOf(mine.leaderDied), medianOf(mine.leaderLived))
	return result{pgherd: median(mine.all), reference: median(ref.all), runs: h.runs, note: note}, nil
}

// benchRTORevoke is the host-death RTO at the fast profile on a strict
// synchronous cluster with host-aware revocation (detect 6 s), timed to
// the survivor's promotion, beside the twin at the anchors' tuned
// timings, timed to its first write. Every run kills the host as the other
// rows do (SIGKILL on loopback): the replica's REST call to the dead
// primary is refused at once, where a host really gone costs Patroni's
// 2 s timeout (tests/ha TestHostAwareRevocation measures that case).
func benchRTORevoke(ctx context.Context, h *harness) (result, error) {
	fast, err := patroni.TimingProfile(patroni.ProfileFast)
	if err != nil {
		return result{}, err
	}
	mine, err := measureRTO(ctx, h, rtoSetup{kind: hacluster.DCSPgherd, timings: fast, revoke: true})
	if err != nil {
		return result{}, err
	}
	ref, err := measureRTO(ctx, h, rtoSetup{kind: hacluster.DCSRaft, timings: haTimings})
	if err != nil {
		return result{}, err
	}
	note := fmt.Sprintf("pgherd at ttl %d/loop_wait %d/retry_timeout %d, synchronous_mode_strict, fast_failover detect %d s (kill → promotion), twin at 20/2/5 (kill → first write); pgherd runs %s, twin runs %s; pgherd runs where the killed DCS member led Raft: %s, where it did not: %s",
		fast.TTL, fast.LoopWait, fast.RetryTimeout, patroni.FastFailoverBounds(fast).Default, list(mine.all), list(ref.all), medianOf(mine.leaderDied), medianOf(mine.leaderLived))
	return result{pgherd: median(mine.all), reference: median(ref.all), runs: h.runs, note: note}, nil
}

func benchWitnessRSS(ctx context.Context, h *harness) (result, error) {
	mine, ref, err := measurePair(ctx, h, haTimings, hacluster.DCSRaft)
	if err != nil {
		return result{}, err
	}
	return result{pgherd: time.Duration(mine.witnessRSS), reference: time.Duration(ref.witnessRSS), runs: 1, bytes: true,
		note: "VmRSS (anonymous + the binary's mapped pages) 15 s after bootstrap; the witness runs its own copy of the binaries, synced and dropped from the page cache, as on its own host; " +
			"pgherd-dcs: static, GOGC 100, GOMEMLIMIT 48 MiB unless set, pages out its binary's read-only pages once, 10 s after start (see pkg/dcs/DESIGN.md, Memory)"}, nil
}

// vmRSS reads VmRSS of pid, in bytes.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

func list(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = fmt.Sprintf("%.2f", d.Seconds())
	}
	return "[" + strings.Join(s, " ") + "] s"
}

func medianOf(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	return fmt.Sprintf("%.2f s (%d runs)", median(ds).Seconds(), len(ds))
}

// copyFile copies an executable as if it had been installed on another
// host: synced to disk and dropped from the page cache, so that the
// witness's process finds in memory only what it reads itself. A copy
// still dirty in the page cache cannot be paged out at all, and one the
// copy left cached in large pieces is mapped back around every page the
// member touches (see pkg/dcs/server/pageout_linux.go).
func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
