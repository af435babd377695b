package ha

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/patroni"
	"github.com/pgherd/pgherd/pkg/service"
	"github.com/pgherd/pgherd/pkg/supervise"
	"github.com/pgherd/pgherd/tests/hacluster"
)

// TestFenceDeadPatroni is the two-primaries case (issue 12): the primary's
// Patroni, under pgherd's supervisor, is killed and cannot be restarted
// (its program made unexecutable). The supervisor must stop that host's
// PostgreSQL before the leader key expires and the replica is promoted; a
// checker asking both servers every 100 ms never sees two primaries.
func TestFenceDeadPatroni(t *testing.T) {
	cred := needReal(t)
	ctx := context.Background()
	base := baseDir(t)
	exe := filepath.Join(base, "patroni")
	copyFile(t, patroni.DefaultExe, exe, 0o755)
	c, err := hacluster.Start(ctx, hacluster.Options{Base: base, Cred: cred, DCS: hacluster.DCSEtcd, Timings: timings, PatroniExe: exe})
	t.Cleanup(c.Stop)
	if err != nil {
		t.Fatal(err)
	}
	primary, err := c.Primary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	replica := c.Other(primary)

	// The primary's Patroni, adopted by a supervisor as pgherd's process
	// manager adopts a daemon it finds running unsupervised.
	var u *service.User
	if cred != nil {
		u = &service.User{Name: "pgherd", UID: cred.Uid, GID: cred.Gid}
	}
	run := filepath.Join(base, "run")
	m := service.NewProcess(service.Config{RunDir: run, StopTimeout: 30 * time.Second,
		Supervisor: filepath.Join(filepath.Dir(pgherdBin), service.SupervisorName),
		Policy:     supervise.Policy{Delay: 100 * time.Millisecond, MaxDelay: time.Second, MaxTries: 1000, StableAfter: 30 * time.Second}})
	pcfg, err := patroni.ReadFile(primary.PatroniYAML())
	if err != nil {
		t.Fatal(err)
	}
	fence := pcfg.Fence() // as pkg/instance gives it
	if fence.TTL != time.Duration(timings.TTL)*time.Second || len(fence.DCS) == 0 || fence.RestURL == "" {
		t.Fatalf("fencing settings from the Patroni YAML: %+v", fence)
	}
	svc := service.Service{Kind: service.KindPatroni, Instance: primary.Name, User: u,
		Exec: []string{exe, primary.PatroniYAML()}, LogFile: filepath.Join(base, "patroni-supervised.log"), Fence: fence}
	if err := os.MkdirAll(filepath.Join(run, service.KindPatroni), 0o755); err != nil {
		t.Fatal(err)
	}
	pid := primary.Patroni.PID()
	if err := os.WriteFile(filepath.Join(run, service.KindPatroni, primary.Name+".pid"), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background(), svc) })
	if st, _ := m.Status(ctx, svc); !st.Running || st.PID != pid || st.Supervision != "supervised" {
		t.Fatalf("the primary's Patroni (PID %d) is not adopted: %+v", pid, st)
	}
	if err := os.Chmod(exe, 0o644); err != nil { // nothing can restart it now
		t.Fatal(err)
	}

	var mu sync.Mutex
	var twoPrimaries []string
	var oldDown, promoted time.Time
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // the checker
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			qctx, cancel := context.WithTimeout(ctx, 90*time.Millisecond)
			recOld, errOld := c.InRecovery(qctx, primary) // an error counts as not a primary
			recNew, errNew := c.InRecovery(qctx, replica)
			cancel()
			now := time.Now()
			mu.Lock()
			if errOld == nil && !recOld && errNew == nil && !recNew {
				twoPrimaries = append(twoPrimaries, now.Format(time.StampMilli))
			}
			if _, up := supervise.Primary(primary.DataDir); !up && oldDown.IsZero() {
				oldDown = now // its postmaster is gone (a failed query may be a timeout)
			}
			if errNew == nil && !recNew && promoted.IsZero() {
				promoted = now
			}
			mu.Unlock()
		}
	}()

	killed := time.Now()
	primary.Patroni.Kill()
	deadline := time.Now().Add(90 * time.Second)
	for {
		mu.Lock()
		p := promoted
		mu.Unlock()
		if !p.IsZero() && time.Since(p) > 2*time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica was not promoted within 90 s of the kill\n%s", c.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	<-done

	st, _ := m.Status(ctx, svc)
	t.Logf("killed at 0; old primary down at %s; replica promoted at %s; supervisor: %s",
		oldDown.Sub(killed).Round(time.Millisecond), promoted.Sub(killed).Round(time.Millisecond), st.Words())
	if len(twoPrimaries) > 0 {
		t.Errorf("two primaries seen at %v", twoPrimaries)
	}
	if oldDown.IsZero() || !oldDown.Before(promoted) {
		t.Errorf("the old primary was not stopped before the promotion (down %v, promoted %v)", oldDown, promoted)
	}
	if _, ok := supervise.Primary(primary.DataDir); ok {
		t.Error("the old primary still runs")
	}
	supLog := readAll(t, filepath.Join(run, service.KindPatroni, primary.Name+".supervise.log"))
	t.Logf("supervisor's log:\n%s", supLog)
	if !strings.Contains(supLog, "the DCS says the leader key expires in") {
		t.Errorf("the supervisor did not ask the DCS for the lease's TTL:\n%s", supLog)
	}
	if st.Fenced == "" {
		t.Errorf("the supervisor reports no fencing: %+v\n%s", st, readAll(t, filepath.Join(run, service.KindPatroni, primary.Name+".supervise.log")))
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
