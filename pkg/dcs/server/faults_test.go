package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// electionDeadline is the liveness bound after a leader dies: a few
// election timeouts (generous, since the test machine is shared).
const electionDeadline = 10 * testHeartbeat

// TestLeaderLossAndRestart stops the leader, expects a new leader and
// working writes within a few election timeouts, restarts the old leader
// and expects it to catch up, while a keepalive client's lease survives.
func TestLeaderLossAndRestart(t *testing.T) {
	c := newCluster(t, 3, nil)
	cl := c.client()
	ctx := ctxT(t, 60*time.Second)

	lease, err := cl.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Put(ctx, "/held", "x", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	ka, err := cl.KeepAlive(kctx, lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range ka {
		}
	}()
	w := cl.Watch(ctx, "/held", clientv3.WithFilterPut())

	for round := range 2 {
		old := c.leader()
		term := c.servers[old].node.raft.CurrentTerm()
		c.stop(old)
		start := time.Now()
		waitFor(t, electionDeadline, "a new leader", func() bool {
			for i, s := range c.servers {
				if s != nil && i != old && s.node.isLeader() {
					return true
				}
			}
			return false
		})
		wctx, cancel := context.WithTimeout(ctx, electionDeadline)
		_, err := cl.Put(wctx, "/round", fmt.Sprint(round))
		cancel()
		if err != nil {
			t.Fatalf("round %d: write after leader loss: %v", round, err)
		}
		t.Logf("round %d: leader and write back after %s", round, time.Since(start).Round(time.Millisecond))
		if testing.Verbose() {
			t.Logf("leader %s", c.servers[c.leader()].Name())
		}

		c.restart(old)
		s := c.servers[old]
		waitFor(t, 10*time.Second, "the restarted member to catch up", func() bool {
			r, err := s.node.fsm.store.Range(rangeReq("/round"))
			return err == nil && len(r.Kvs) == 1 && string(r.Kvs[0].Value) == fmt.Sprint(round)
		})
		if got := s.node.raft.CurrentTerm(); got < term {
			t.Fatalf("restarted member reports term %d, below %d before the restart", got, term)
		}
	}
	select {
	case ev := <-w:
		for _, e := range ev.Events {
			if e.Type == mvccpb.DELETE {
				t.Fatalf("the kept-alive lease expired: %v", e)
			}
		}
	default:
	}
	ttl, err := cl.TimeToLive(ctx, lease.ID)
	if err != nil || ttl.TTL <= 0 {
		t.Fatalf("kept-alive lease: ttl %+v err %v", ttl, err)
	}
}

// TestLeaseExpiresOnlyThroughLeader checks that an abandoned lease is
// revoked (its key deleted, a DELETE event sent) after its TTL, not before.
func TestLeaseExpiry(t *testing.T) {
	c := newCluster(t, 3, nil)
	cl := c.client()
	ctx := ctxT(t, 30*time.Second)
	lease, err := cl.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	granted := time.Now()
	put, err := cl.Put(ctx, "/gone", "x", clientv3.WithLease(lease.ID))
	if err != nil {
		t.Fatal(err)
	}
	w := cl.Watch(ctx, "/gone", clientv3.WithRev(put.Header.Revision+1))
	select {
	case ev := <-w:
		if len(ev.Events) != 1 || ev.Events[0].Type != mvccpb.DELETE {
			t.Fatalf("want one DELETE event, got %+v", ev.Events)
		}
		if d := time.Since(granted); d < 2*time.Second {
			t.Fatalf("lease expired after %s, before its 2s TTL", d)
		}
	case <-ctx.Done():
		t.Fatal("the lease never expired")
	}
}

// TestCloseAndReopen stops every member and starts them again from their
// data directories: the data and the membership are still there.
func TestCloseAndReopen(t *testing.T) {
	c := newCluster(t, 3, nil)
	cl := c.client()
	ctx := ctxT(t, 30*time.Second)
	for i := range 20 {
		if _, err := cl.Put(ctx, fmt.Sprintf("/k/%02d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	rev := c.servers[c.leader()].node.fsm.store.Rev()
	for i := range c.servers {
		c.stop(i)
	}
	for i := range c.servers {
		c.restart(i)
	}
	c.waitVoters(3)
	cl = c.client()
	get, err := cl.Get(ctx, "/k/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(get.Kvs) != 20 || get.Header.Revision != rev {
		t.Fatalf("after reopen: %d keys at revision %d, want 20 at %d", len(get.Kvs), get.Header.Revision, rev)
	}
}

// TestSnapshots compacts the log with a small snapshot threshold, adds a
// member, which must catch up (from the snapshot, or from log entries the
// log store still holds), and restarts the member that took the snapshot:
// right after the restart, before any entry is replayed, its state is the
// snapshot's.
func TestSnapshots(t *testing.T) {
	tune := func(cfg *dcs.Config) { cfg.SnapshotThreshold, cfg.TrailingLogs = 32, 8 }
	c := newCluster(t, 2, tune)
	cl := c.client()
	ctx := ctxT(t, 60*time.Second)
	for i := range 100 {
		if _, err := cl.Put(ctx, fmt.Sprintf("/s/%03d", i), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	li := c.leader()
	lead := c.servers[li]
	if err := lead.node.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if first, _ := lead.node.logs.FirstIndex(); first <= 1 {
		t.Fatalf("the log was not compacted (first index %d)", first)
	}
	count := func(s *Server) int64 {
		r, err := s.node.fsm.store.Range(&pb.RangeRequest{Key: []byte("/s/"), RangeEnd: []byte("/s0"), CountOnly: true})
		if err != nil {
			return -1
		}
		return r.Count
	}
	cfg := memberConfig(t, "late")
	cfg.Join = []string{lead.PeerAddr()}
	tune(&cfg)
	s := c.add(cfg)
	c.waitVoters(3)
	waitFor(t, 10*time.Second, "the new member to hold all keys", func() bool { return count(s) == 100 })
	if len(s.node.fsm.memberList()) != 3 {
		t.Fatalf("member table on the new member: %+v", s.node.fsm.memberList())
	}
	c.stop(li)
	c.restart(li)
	if n := count(c.servers[li]); n != 100 {
		t.Fatalf("right after a restart, the snapshot gives %d keys, want 100", n)
	}
	if got := len(c.servers[li].node.fsm.memberList()); got < 2 {
		t.Fatalf("the member table was not in the snapshot: %d members", got)
	}
}

// TestWitnessVotes checks the voting policy: with two data members a
// witness votes (three voters); once a data member leaves, the witness
// loses its vote, so the voter count stays odd.
func TestWitnessVotes(t *testing.T) {
	c := newCluster(t, 2, nil)
	cfg := memberConfig(t, "w")
	cfg.Role = dcs.RoleWitness
	cfg.Join = []string{c.servers[0].PeerAddr()}
	c.add(cfg)
	c.waitVoters(3)
	ctx := ctxT(t, 20*time.Second)
	lead := c.servers[c.leader()]
	other := c.servers[0]
	if other == lead {
		other = c.servers[1]
	}
	if err := lead.node.callLeader(ctx, dcs.RPCRemove, dcs.Member{Name: other.Name()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the witness to lose its vote", func() bool {
		ms, err := lead.node.members(ctx)
		if err != nil || len(ms) != 2 {
			return false
		}
		for _, m := range ms {
			if m.Name == "w" {
				return m.Suffrage == "nonvoter" && m.Role == dcs.RoleWitness
			}
		}
		return false
	})
}
