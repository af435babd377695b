package ha

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestPeerLinkCutNoFailover cuts the primary's DCS member off its peers
// (the peer network alone: its client port still answers the primary's
// Patroni, and replication and the REST API go on) for three times
// loop_wait + detect, on the strict synchronous cluster with host-aware
// revocation. The member, without a leader, closes the connections of
// Patroni's requests, so Patroni moves to another member and keeps its
// lease: the leader key never changes, no revocation happens, and the
// primary takes every write meanwhile. Patroni picks its DCS endpoint at
// random, so the test first makes the primary's Patroni use its own
// host's member, the case that fails over otherwise.
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
	before, err := c.PatroniDCSEndpoint(prim)
	if err != nil {
		t.Fatal(err)
	}
	key := currentLeader(t, ctx, c)
	idx := 0
	if prim.Name == nw.Hosts[1].Name {
		idx = 1
	}
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
	t.Cleanup(heal)

	// The primary must take every write while its member is cut off.
	var failed []error
	done := make(chan struct{})
	var wg sync.WaitGroup
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
	d := 3 * time.Duration(tm.LoopWait+max(tm.RetryTimeout, int(detect/time.Second))) * time.Second
	leaderUnchanged(t, ctx, c, key, d, "the primary's DCS member cut off its peers")
	close(done)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("the primary %s refused %d writes while its DCS member was cut off its peers, the first: %v", prim.Name, len(failed), failed[0])
	}
	if n := revocationsLogged(c); n != 0 {
		t.Fatalf("the DCS logged %d host-aware revocations", n)
	}
	after, err := c.PatroniDCSEndpoint(prim)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s's Patroni used %s before the cut, %s after it (%s cut off its peers)", prim.Name, before, after, d)

	heal()
	if err := c.WaitDCSHealthy(ctx, time.Minute); err != nil {
		t.Fatalf("the DCS after the heal: %v", err)
	}
	hctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.WaitHealthy(hctx); err != nil {
		t.Fatalf("the cluster after the heal: %v", err)
	}
}
