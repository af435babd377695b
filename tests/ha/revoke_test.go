package ha

import (
	"context"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/patroni"
	"github.com/pgherd/pgherd/tests/hacluster"
)

// revokeBound is the promotion bound docs/ha-witness.md states for a
// host's death with host-aware revocation: the leader key's lease goes
// detect after the host's DCS member was last heard from (or, when the
// DCS leader died with the host, detect after the next one's election,
// about 2 s later) and loop_wait + detect after the lease's last refresh,
// which came before the death; then the replica's Patroni, woken by the
// key's DELETE, asks every member of its last view with a leader, the
// dead primary included (Patroni 3.0.2 gives up after 2 s), and has 5 s
// to promote on a loaded host. The promotion must also come from a
// revocation, not the TTL: the test counts the one the DCS logged.
func revokeBound(t patroni.Timings, detect time.Duration) time.Duration {
	return detect + time.Duration(max(t.LoopWait, 2)+2+5)*time.Second
}

// leaderUnchanged watches the leader key for d and fails the test if its
// holder or its creation changes: a failover, even back to the same node.
func leaderUnchanged(t *testing.T, ctx context.Context, c *hacluster.Cluster, want hacluster.LeaderKey, d time.Duration, what string) {
	t.Helper()
	w, err := c.WatchLeader()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for end := time.Now().Add(d); time.Now().Before(end); {
		if k, err := w.Get(ctx); err == nil && k != want {
			t.Fatalf("%s: the leader key changed from %+v to %+v", what, want, k)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func currentLeader(t *testing.T, ctx context.Context, c *hacluster.Cluster) hacluster.LeaderKey {
	t.Helper()
	w, err := c.WatchLeader()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	k, err := w.Get(ctx)
	if err != nil || k.Holder == "" {
		t.Fatalf("reading the leader key: %+v, %v", k, err)
	}
	return k
}

// revocationsLogged counts the host-aware revocations the DCS members
// logged.
func revocationsLogged(c *hacluster.Cluster) int {
	n := 0
	for _, f := range c.DCSLogs() {
		b, _ := os.ReadFile(f)
		n += strings.Count(string(b), "host-aware revocation: revoked lease")
	}
	return n
}

// startRevokeCluster starts a strict synchronous cluster at the fast
// profile with host-aware revocation (detect derived, 6 s) on three hosts
// in network namespaces named after prefix.
func startRevokeCluster(t *testing.T, ctx context.Context, prefix string) (*hacluster.Cluster, *hacluster.Netns, patroni.Timings, time.Duration) {
	t.Helper()
	return startRevokeClusterNet(t, ctx, prefix, false)
}

// startRevokeClusterNet is startRevokeCluster, with the DCS members' peer
// traffic on a network of its own when peerNet (Netns.AddPeerNetwork).
func startRevokeClusterNet(t *testing.T, ctx context.Context, prefix string, peerNet bool) (*hacluster.Cluster, *hacluster.Netns, patroni.Timings, time.Duration) {
	t.Helper()
	cred := needReal(t)
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	tm, err := patroni.TimingProfile(patroni.ProfileFast)
	if err != nil {
		t.Fatal(err)
	}
	detect := time.Duration(patroni.FastFailoverBounds(tm).Default) * time.Second
	nw, hosts := threeHosts(t, prefix)
	if peerNet {
		if err := nw.AddPeerNetwork(); err != nil {
			t.Fatal(err)
		}
		copy(hosts[:], nw.Hosts)
	}
	c := startCluster(t, ctx, hacluster.Options{Base: baseDir(t), Pgherd: pgherdBin, Cred: cred, DCS: hacluster.DCSPgherd,
		Timings: tm, SynchronousMode: true, SynchronousModeStrict: true, FastFailoverDetect: detect, Hosts: hosts})
	return c, nw, tm, detect
}

// TestHostAwareRevocation runs a strict synchronous cluster at the fast
// profile with host-aware revocation, on three hosts in network
// namespaces. First the two things that must not fail over: the
// primary's DCS member alone killed, and the primary's Patroni stopped
// for loop_wait + detect (its lease stale for longer than the rule's
// threshold, its host answering). Then the primary's host dies (cut off
// the bridge, then every process SIGKILLed, so that no peer sees a
// reset): the replica must be promoted within revokeBound, with every
// acknowledged row, through one revocation the DCS logged.
func TestHostAwareRevocation(t *testing.T) {
	ctx := ctxT(t, 8*time.Minute)
	c, nw, tm, detect := startRevokeCluster(t, ctx, "hr")
	threshold := detect + time.Duration(tm.LoopWait)*time.Second
	prim, err := c.Primary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key := currentLeader(t, ctx, c)

	// The primary's DCS member alone dies: Patroni refreshes its lease
	// through another member, so the stale-lease half of the rule never
	// holds.
	prim.DCS.Kill()
	leaderUnchanged(t, ctx, c, key, 3*threshold, "the primary's DCS member killed")
	if err := c.StartDCSMember(prim); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitDCSHealthy(ctx, time.Minute); err != nil {
		t.Fatalf("the DCS after the member's restart: %v", err)
	}

	// The primary's Patroni stops for the threshold: its lease goes
	// stale past loop_wait + detect but its host answers.
	pid := prim.Patroni.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			syscall.Kill(pid, syscall.SIGCONT)
			resumed = true
		}
	}
	t.Cleanup(resume)
	leaderUnchanged(t, ctx, c, key, threshold, "the primary's Patroni stopped")
	resume()
	leaderUnchanged(t, ctx, c, key, threshold, "the primary's Patroni resumed")
	if n := revocationsLogged(c); n != 0 {
		t.Fatalf("the DCS logged %d host-aware revocations before the host died", n)
	}

	// The primary's host dies.
	w, err := c.StartWriter(ctx, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.WaitAcked(wctx, 20); err != nil {
		w.Stop()
		t.Fatalf("the writer before the host's death: %v", err)
	}
	if err := c.WaitSyncStandby(wctx, c.Other(prim)); err != nil {
		w.Stop()
		t.Fatalf("before the host's death: %v", err)
	}
	bound := revokeBound(tm, detect)
	idx := 0
	if prim.Name == nw.Hosts[1].Name {
		idx = 1
	}
	f, err := c.MeasurePromotion(ctx, bound, func(*hacluster.Node) error { return nw.Cut(idx) })
	if err != nil {
		w.Stop()
		t.Fatal(err)
	}
	t.Logf("host-aware revocation, fast profile, detect %s: %s promoted in %s (bound %s; DCS leader died with the host: %v)",
		detect, f.New.Name, f.RTO.Round(10*time.Millisecond), bound, f.DCSLeaderDied)
	w.Stop()
	if n := revocationsLogged(c); n != 1 {
		t.Fatalf("the DCS logged %d host-aware revocations, want 1", n)
	}
	if len(w.Acked) == 0 {
		t.Fatal("the writer had no acknowledged commit")
	}
	miss, err := c.Missing(ctx, f.New, w.Acked)
	if err != nil || len(miss) > 0 {
		t.Fatalf("after failover %d of %d acknowledged rows are missing on %s: %v %v", len(miss), len(w.Acked), f.New.Name, miss, err)
	}

	// The host comes back and rejoins as a replica.
	if err := nw.Heal(idx); err != nil {
		t.Fatal(err)
	}
	if err := c.StartHost(f.Old); err != nil {
		t.Fatal(err)
	}
	hctx, hcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer hcancel()
	if err := c.WaitHealthy(hctx); err != nil {
		t.Fatalf("old primary did not rejoin: %v", err)
	}
	if rec, err := c.InRecovery(ctx, f.Old); err != nil || !rec {
		t.Fatalf("old primary %s after rejoin: in recovery %v, %v", f.Old.Name, rec, err)
	}
}

// TestFrozenPrimaryNeverTakesTheKeyBack freezes the primary's whole host
// (SIGSTOP of PostgreSQL, Patroni and the DCS member) until the replica has
// been promoted, which needs the host-aware revocation, then resumes it:
// for three thresholds it must neither take the leader key back from the
// new primary nor acknowledge a commit, and it must then rejoin as a
// replica.
//
// A resumed Patroni 3.0.2 whose cached view still shows it holding the
// key rewrites it with a plain put (etcd3.py, _update_leader): it took
// the key back in a CI run before pgherd's DCS refused such a put for a
// declared leader key (mvcc.Options.Held, fsm.declaredLeaderKey).
func TestFrozenPrimaryNeverTakesTheKeyBack(t *testing.T) {
	ctx := ctxT(t, 8*time.Minute)
	c, _, tm, detect := startRevokeCluster(t, ctx, "hf")
	threshold := detect + time.Duration(tm.LoopWait)*time.Second
	prim, err := c.Primary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := c.Other(prim)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.WaitSyncStandby(wctx, other); err != nil {
		t.Fatal(err)
	}
	resume, err := c.FreezeHost(prim)
	t.Cleanup(resume)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	bound := revokeBound(tm, detect)
	pctx, pcancel := context.WithTimeout(ctx, bound)
	defer pcancel()
	if err := c.WaitPromoted(pctx, other); err != nil {
		t.Fatalf("%s was not promoted within %s of %s's freeze: %v", other.Name, bound, prim.Name, err)
	}
	frozen := time.Since(start)
	key := currentLeader(t, ctx, c)
	for end := time.Now().Add(5 * time.Second); key.Holder != other.Name && time.Now().Before(end); key = currentLeader(t, ctx, c) {
		time.Sleep(100 * time.Millisecond) // the witness applies the new key a commit interval later
	}
	if key.Holder != other.Name {
		t.Fatalf("after the promotion the leader key is %+v, want held by %s", key, other.Name)
	}
	if n := revocationsLogged(c); n != 1 {
		t.Fatalf("the DCS logged %d host-aware revocations, want 1", n)
	}
	resume()
	t.Logf("%s frozen %s, %s promoted meanwhile; resumed", prim.Name, frozen.Round(10*time.Millisecond), other.Name)

	// The resumed host: the key stays with the new primary, and no commit
	// is acknowledged on the old one.
	accepted := make(chan int, 1)
	done := make(chan struct{})
	stop := sync.OnceFunc(func() { close(done) })
	defer stop()
	go func() {
		n := 0
		defer func() { accepted <- n }()
		for {
			select {
			case <-done:
				return
			default:
			}
			if c.Writable(ctx, prim) == nil {
				n++
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	leaderUnchanged(t, ctx, c, key, 3*threshold, "the frozen primary resumed")
	stop()
	if n := <-accepted; n > 0 {
		t.Fatalf("the resumed old primary %s acknowledged %d commits", prim.Name, n)
	}
	hctx, hcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer hcancel()
	if err := c.WaitHealthy(hctx); err != nil {
		t.Fatalf("the old primary did not rejoin: %v", err)
	}
	if rec, err := c.InRecovery(ctx, prim); err != nil || !rec {
		t.Fatalf("old primary %s after rejoin: in recovery %v, %v", prim.Name, rec, err)
	}
}
