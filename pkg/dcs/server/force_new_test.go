package server

import (
	"os"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// TestForceNewCluster loses two of three members: one for good (its data
// directory deleted), one that comes back later with its old data, as
// from a partition. The survivor, restarted with force_new_cluster, leads
// alone under the new cluster ID with every write it had, accepts writes,
// and a new member joins it; the member that comes back can neither join
// nor elect itself, and the survivor keeps leading.
func TestForceNewCluster(t *testing.T) {
	c := newCluster(t, 3, nil)
	cl := c.client(c.endpoints()...)
	ctx := testCtx()
	put, err := cl.Put(ctx, "/service/pg/leader", "m0")
	if err != nil {
		t.Fatal(err)
	}
	oldID := c.servers[0].node.fsm.cluster()
	c.stop(1)
	c.stop(2)
	os.RemoveAll(c.cfgs[1].DataDir)
	c.stop(0)

	newID := "00000000c0ffee01"
	c.cfgs[0].ForceNewCluster = newID
	start := time.Now()
	c.restart(0)
	c.waitVoters(1)
	s := c.servers[0]
	rcl := c.client(s.ClientURL())
	if _, err := rcl.Put(ctx, "/service/pg/after", "1"); err != nil {
		t.Fatal(err)
	}
	t.Logf("force_new_cluster: start to first write %v", time.Since(start))
	if got := dcs.FormatClusterID(s.node.fsm.cluster()); got != newID || s.node.fsm.cluster() == oldID {
		t.Fatalf("cluster ID %s, want %s", got, newID)
	}
	if ms := s.node.fsm.memberList(); len(ms) != 1 || ms[0].Name != "m0" {
		t.Fatalf("member table %+v, want m0 alone", ms)
	}
	r, err := rcl.Get(ctx, "/service/pg/leader")
	if err != nil || len(r.Kvs) != 1 || r.Kvs[0].ModRevision != put.Header.Revision {
		t.Fatalf("the survivor lost a write: %+v, %v", r, err)
	}
	if got := dcs.RecordedCluster(c.cfgs[0].DataDir); got != newID {
		t.Fatalf("member.json records %q, want %s", got, newID)
	}

	// The partitioned member returns with its old data and configuration.
	c.restart(2)
	j := memberConfig(t, "m3")
	j.Join = []string{s.PeerAddr()}
	c.add(j)
	c.waitVoters(2)
	waitFor(t, 10*time.Second, "m2 leaderless and outside the cluster", func() bool {
		return !c.servers[2].node.isLeader() && c.servers[0].node.isLeader()
	})
	if ms := s.node.fsm.memberList(); len(ms) != 2 {
		t.Fatalf("member table %+v, want m0 and m3", ms)
	}
	// A restart of the recovered member does not recover again.
	c.stop(0)
	c.restart(0)
	if got := dcs.FormatClusterID(c.servers[0].node.fsm.cluster()); got != newID {
		t.Fatalf("after a restart: cluster %s", got)
	}
}
