package ha

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pgherd/pgherd/tests/hacluster"
)

// TestPeerLinkCutNoFailover cuts a DCS member off its peers (the peer
// network alone: its client port still answers, and replication and the
// REST API go on) for three times loop_wait + detect, on the strict
// synchronous cluster with host-aware revocation: first the primary's own
// member, then the one its Patroni moved to. The member, without a leader,
// closes the connections of Patroni's requests, so Patroni moves to another
// member and keeps its lease: the leader key never changes, no revocation
// happens, and the primary takes every write meanwhile. Patroni picks its
// DCS endpoint at random, so the test first makes the primary's Patroni use
// its own host's member, the case of issue 16.
func TestPeerLinkCutNoFailover(t *testing.T) {
	ctx := ctxT(t, 6*time.Minute)
	c, nw, tm, detect := startRevokeClusterNet(t, ctx, "pc", true)
	prim, err := c.Primary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.UseOwnDCSMember(ctx, prim); err != nil {
		t.Fatal(err)
	}
	key := currentLeader(t, ctx, c)
	d := 3 * time.Duration(tm.LoopWait+max(tm.RetryTimeout, int(detect/time.Second))) * time.Second
	for _, what := range []string{"the primary's own DCS member", "the DCS member the primary's Patroni moved to"} {
		ep, err := c.PatroniDCSEndpoint(prim)
		if err != nil {
			t.Fatal(err)
		}
		// DCSClients are in the hosts' order: n1, n2, the witness.
		idx := slices.Index(c.DCSClients, ep)
		if idx < 0 {
			t.Fatalf("%s's Patroni uses %s, not a member of %v", prim.Name, ep, c.DCSClients)
		}
		cutPeerNoFailover(t, ctx, c, nw, idx, prim, key, d, what+" ("+nw.Hosts[idx].Name+") cut off its peers")
		after, err := c.PatroniDCSEndpoint(prim)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s's Patroni used %s, then %s", what, prim.Name, ep, after)
	}
	hctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.WaitHealthy(hctx); err != nil {
		t.Fatalf("the cluster after the heals: %v", err)
	}
}

// cutPeerNoFailover takes host idx off the peer network for d, during
// which the leader key must stay key and prim must take a write every
// 0.5 s; then it heals the cut and waits for the DCS to be healthy.
func cutPeerNoFailover(t *testing.T, ctx context.Context, c *hacluster.Cluster, nw *hacluster.Netns, idx int, prim *hacluster.Node, key hacluster.LeaderKey, d time.Duration, what string) {
	t.Helper()
	if err := nw.CutPeer(idx); err != nil {
		t.Fatal(err)
	}
	healed := false
	heal := func() {
		if !healed {
			nw.HealPeer(idx)
			healed = true
		}
	}
	defer heal()
	var failed []error
	done := make(chan struct{})
	var wg sync.WaitGroup
	// Also when the test fails half way: no write after the cluster stops.
	stop := sync.OnceFunc(func() { close(done); wg.Wait() })
	defer stop()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(500 * time.Millisecond):
			}
			if err := c.Writable(ctx, prim); err != nil {
				failed = append(failed, err)
			}
		}
	}()
	leaderUnchanged(t, ctx, c, key, d, what)
	stop()
	if len(failed) > 0 {
		t.Fatalf("%s: the primary %s refused %d writes, the first: %v", what, prim.Name, len(failed), failed[0])
	}
	if n := revocationsLogged(c); n != 0 {
		t.Fatalf("%s: the DCS logged %d host-aware revocations", what, n)
	}
	heal()
	if err := c.WaitDCSHealthy(ctx, time.Minute); err != nil {
		t.Fatalf("the DCS after %s: %v", what, err)
	}
}
