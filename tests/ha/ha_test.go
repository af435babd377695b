// Package ha tests automatic failover of two PostgreSQL hosts and a
// witness on pgherd's embedded DCS, with real Patroni 3.0.2 and
// PostgreSQL 15 (issue 6, cases a to e).
package ha

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pgherd/pgherd/internal/testuser"
	"github.com/pgherd/pgherd/pkg/patroni"
	"github.com/pgherd/pgherd/tests/hacluster"
)

// timings are the issue's: ttl 20, loop_wait 2, retry_timeout 5.
var timings = patroni.Timings{TTL: 20, LoopWait: 2, RetryTimeout: 5}

var pgherdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ha-bin-")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755)
	pgherdBin = filepath.Join(dir, "pgherd")
	if out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/pgherd/pgherd/cmd/pgherd", "github.com/pgherd/pgherd/cmd/pgherd-dcs", "github.com/pgherd/pgherd/cmd/pgherd-supervise").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("building pgherd and pgherd-dcs: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needReal skips without the real components, and returns the credential
// to run them with (the user pgherd when the tests run as root).
func needReal(t *testing.T) *syscall.Credential {
	t.Helper()
	if testing.Short() {
		t.Skip("HA tests run real clusters; skipped with -short")
	}
	for _, p := range []string{patroni.DefaultExe, filepath.Join(hacluster.PGBinDir, "postgres")} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is not installed (apt install patroni postgresql-15)", p)
		}
	}
	if os.Geteuid() != 0 {
		return nil
	}
	_, uid, gid := testuser.Pgherd(t)
	return &syscall.Credential{Uid: uid, Gid: gid}
}

// baseDir is a working directory the system user can traverse.
func baseDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "pgherd-ha-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	t.Cleanup(func() {
		if os.Getenv("PGHERD_KEEP_TEST_DIR") == "" {
			os.RemoveAll(d)
		}
	})
	return d
}

func startCluster(t *testing.T, ctx context.Context, o hacluster.Options) *hacluster.Cluster {
	t.Helper()
	c, err := hacluster.Start(ctx, o)
	if c != nil {
		t.Cleanup(c.Stop)
	}
	if err != nil {
		t.Fatalf("starting the cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.Logs())
		}
	})
	return c
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// writesFor writes to n every 500 ms for d and counts the failures.
func writesFor(ctx context.Context, c *hacluster.Cluster, n *hacluster.Node, d time.Duration) (ok, failed int) {
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		if c.Writable(ctx, n) == nil {
			ok++
		} else {
			failed++
		}
		time.Sleep(500 * time.Millisecond)
	}
	return ok, failed
}

// TestTwoHostsAndWitness runs cases b, a with d, and c of issue 6 on one
// cluster in that order (each case leaves the cluster healthy for the
// next, except c, which is last).
func TestTwoHostsAndWitness(t *testing.T) {
	cred := needReal(t)
	ctx := ctxT(t, 8*time.Minute)
	c := startCluster(t, ctx, hacluster.Options{Base: baseDir(t), Pgherd: pgherdBin, Cred: cred, DCS: hacluster.DCSPgherd,
		Timings: timings, SynchronousMode: true})

	// b) The witness dies: the primary keeps its role and takes writes
	// for longer than a TTL (its leader key is renewed with two of three
	// DCS members); the restarted witness rejoins.
	t.Run("b_witness_loss", func(t *testing.T) {
		prim, err := c.Primary(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.Witness.Kill()
		ok, failed := writesFor(ctx, c, prim, time.Duration(timings.TTL+5)*time.Second)
		if failed > 0 || ok == 0 {
			t.Fatalf("writes on %s with the witness down: %d ok, %d failed", prim.Name, ok, failed)
		}
		if now, err := c.Primary(ctx); err != nil || now != prim {
			t.Fatalf("primary changed or lost with the witness down: %v %v", now, err)
		}
		if err := c.StartWitness(); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitDCSHealthy(ctx, 30*time.Second); err != nil {
			t.Fatalf("the witness did not rejoin: %v", err)
		}
	})
	if t.Failed() {
		return
	}

	// a) + d) The primary's host dies (Patroni, postmaster and its DCS
	// member) while a writer commits rows with synchronous_mode on: the
	// replica is promoted and has every acknowledged row.
	t.Run("a_d_primary_host_loss", func(t *testing.T) { primaryHostLoss(t, ctx, c, 60*time.Second) })
	if t.Failed() {
		return
	}

	// c) The witness and the replica's host die together: the primary's
	// DCS member is alone, so no one can be promoted and the primary
	// stops taking writes once it cannot renew its leader key.
	t.Run("c_witness_and_replica_loss", func(t *testing.T) {
		prim, err := c.Primary(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.Witness.Kill()
		c.KillHost(c.Other(prim))
		start := time.Now()
		sctx, cancel := context.WithTimeout(ctx, time.Duration(timings.TTL+timings.RetryTimeout+10)*time.Second)
		defer cancel()
		var lastErr error
		for sctx.Err() == nil {
			if lastErr = c.Writable(sctx, prim); lastErr != nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if lastErr == nil {
			t.Fatalf("%s still took writes %s after losing its quorum", prim.Name, time.Since(start).Round(time.Second))
		}
		t.Logf("the lone primary stopped taking writes after %s: %v", time.Since(start).Round(100*time.Millisecond), lastErr)
		// It must stay that way: a few more seconds without a write.
		ok, _ := writesFor(ctx, c, prim, 5*time.Second)
		if ok > 0 {
			t.Fatalf("%s took %d writes again without a quorum", prim.Name, ok)
		}
	})
}

// primaryHostLoss kills the primary's host (Patroni, postmaster and its
// DCS member) while a writer commits a row every 50 ms, requires the
// replica's promotion within limit with every acknowledged row, then
// brings the old primary back as a replica. It returns the failover.
func primaryHostLoss(t *testing.T, ctx context.Context, c *hacluster.Cluster, limit time.Duration) *hacluster.Failover {
	t.Helper()
	w, err := c.StartWriter(ctx, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	f, err := c.MeasureFailover(ctx, limit)
	if err != nil {
		w.Stop()
		t.Fatal(err)
	}
	t.Logf("failover: %s", f.Describe())
	time.Sleep(time.Second)
	w.Stop()
	if len(w.Acked) == 0 {
		t.Fatal("the writer had no acknowledged commit")
	}
	miss, err := c.Missing(ctx, f.New, w.Acked)
	if err != nil || len(miss) > 0 {
		t.Fatalf("after failover %d of %d acknowledged rows are missing on %s: %v %v", len(miss), len(w.Acked), f.New.Name, miss, err)
	}
	t.Logf("%d acknowledged rows, all on the new primary (%d failed attempts during failover)", len(w.Acked), w.Fails)
	// The old primary's host comes back and rejoins as a replica.
	if err := c.StartHost(f.Old); err != nil {
		t.Fatal(err)
	}
	hctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := c.WaitHealthy(hctx); err != nil {
		t.Fatalf("old primary did not rejoin: %v", err)
	}
	if rec, err := c.InRecovery(ctx, f.Old); err != nil || !rec {
		t.Fatalf("old primary %s after rejoin: in recovery %v, %v", f.Old.Name, rec, err)
	}
	return f
}
