package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// emptyDir removes everything in dir, as a disk swap or a careless rm does.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// clusterIDOf waits until member s knows its cluster's ID.
func clusterIDOf(t *testing.T, s *Server) string {
	t.Helper()
	waitFor(t, 10*time.Second, "the cluster ID", func() bool { return s.node.fsm.cluster() != 0 })
	return dcs.FormatClusterID(s.node.fsm.cluster())
}

// TestEmptiedMemberRefusesToStart: a voter whose data directory was
// emptied, restarted with its configuration (which still names the members
// to join through), must not come back as a voter with no log: it refuses
// to start, says what to do, leaves its directory empty, and the others
// keep working.
func TestEmptiedMemberRefusesToStart(t *testing.T) {
	c := newCluster(t, 3, nil)
	cfg := c.cfgs[2]
	cfg.Join = []string{c.servers[0].PeerAddr()}
	cfg.ClusterID = clusterIDOf(t, c.servers[2])
	c.stop(2)
	emptyDir(t, cfg.DataDir)
	s, err := Start(testCtx(), cfg)
	if err == nil {
		s.Close()
		t.Fatal("a member with an emptied data dir started beside the others")
	}
	if !strings.Contains(err.Error(), "pgherd dcs leave m2") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("want one line naming `pgherd dcs leave m2`, got: %v", err)
	}
	if !dcs.EmptyDir(cfg.DataDir) {
		t.Fatalf("the refused start left files in %s", cfg.DataDir)
	}
	ctx := ctxT(t, 20*time.Second)
	if _, err := c.client(c.endpoints()[:2]...).Put(ctx, "/after", "x"); err != nil {
		t.Fatalf("the cluster does not work after the refusal: %v", err)
	}
}

// TestEmptiedBootstrapMemberRefusesToBootstrap: the member that
// bootstrapped the cluster, emptied and started alone, must not bootstrap
// a new one-member cluster (and acknowledge writes the others never see).
func TestEmptiedBootstrapMemberRefusesToBootstrap(t *testing.T) {
	c := newCluster(t, 1, nil)
	cfg := c.cfgs[0]
	cfg.ClusterID = clusterIDOf(t, c.servers[0]) // as pgherd dcs init records it
	c.stop(0)
	emptyDir(t, cfg.DataDir)
	s, err := Start(testCtx(), cfg)
	if err == nil {
		s.Close()
		t.Fatal("the emptied bootstrap member bootstrapped a new cluster")
	}
	if !strings.Contains(err.Error(), "pgherd dcs leave m0") || !strings.Contains(err.Error(), "bootstrap") {
		t.Fatalf("want the refusal to bootstrap and `pgherd dcs leave m0`, got: %v", err)
	}
	if !dcs.EmptyDir(cfg.DataDir) {
		t.Fatalf("the refused start left files in %s", cfg.DataDir)
	}
}

// TestDataDirOfAnotherCluster: a member given the data directory of a
// member of another cluster (a backup restored on the wrong host) refuses
// to start rather than serve the other cluster's state.
func TestDataDirOfAnotherCluster(t *testing.T) {
	a := newCluster(t, 1, nil)
	b := newCluster(t, 1, nil) // also named m0
	aCfg, bDir := a.cfgs[0], b.cfgs[0].DataDir
	aCfg.ClusterID = clusterIDOf(t, a.servers[0])
	bID := clusterIDOf(t, b.servers[0])
	waitFor(t, 5*time.Second, "b's member.json to record its cluster", func() bool { return dcs.RecordedCluster(bDir) == bID })
	a.stop(0)
	b.stop(0)
	aCfg.DataDir = bDir
	s, err := Start(testCtx(), aCfg)
	if err == nil {
		s.Close()
		t.Fatal("a member started on another cluster's data dir")
	}
	if !strings.Contains(err.Error(), bID) || !strings.Contains(err.Error(), aCfg.ClusterID) || !strings.Contains(err.Error(), "pgherd dcs leave m0`") {
		t.Fatalf("want both cluster IDs and `pgherd dcs leave m0` in the refusal, got: %v", err)
	}
	if got := dcs.RecordedCluster(bDir); got != bID {
		t.Fatalf("the refused start changed the data dir's cluster to %q", got)
	}
	// A member.json from before the record: the member finds out from its
	// state and stops.
	if err := dcs.WriteIdentity(bDir, "m0", ""); err != nil {
		t.Fatal(err)
	}
	if s, err = Start(testCtx(), aCfg); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	select {
	case err := <-s.node.fatal:
		if !strings.Contains(err.Error(), bID) || !strings.Contains(err.Error(), "pgherd dcs leave m0`") {
			t.Fatalf("unclear error: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a member kept running on another cluster's data dir")
	}
	if got := dcs.RecordedCluster(bDir); got != "" {
		t.Fatalf("the member recorded cluster %q in another cluster's data dir", got)
	}
}

// TestRaftRefusesAnotherCluster: Raft's transport checks no cluster
// identity (a vote request from an ID outside the configuration is
// refused, but any AppendEntries with a newer term is followed), so the
// peer port's handshake carries the cluster ID: a Raft connection from
// another cluster is closed before Raft reads a byte, and one from this
// cluster is served.
func TestRaftRefusesAnotherCluster(t *testing.T) {
	c := newCluster(t, 1, nil)
	s := c.servers[0]
	own := s.node.fsm.cluster()
	clusterIDOf(t, s)
	waitFor(t, 10*time.Second, "cluster version 2", func() bool { return s.node.allows(versionClusterVersion) })
	term := s.node.raft.CurrentTerm()
	heartbeat := func(id, withTerm uint64) (raft.AppendEntriesResponse, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pl := newPeerListener(ln, nil, nil, slog.New(slog.DiscardHandler))
		pl.hello = func() (byte, uint64) { return dcs.ProtoRaftHello, id }
		tr := raft.NewNetworkTransport(pl, 1, 2*time.Second, io.Discard)
		defer tr.Close()
		var resp raft.AppendEntriesResponse
		err = tr.AppendEntries("intruder", raft.ServerAddress(s.PeerAddr()), &raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte(ln.Addr().String())}, Term: withTerm, Leader: []byte(ln.Addr().String()),
		}, &resp)
		return resp, err
	}
	if _, err := heartbeat(own^1, term+100); err == nil {
		t.Fatal("a member accepted an AppendEntries from another cluster")
	}
	if got := s.node.raft.CurrentTerm(); got != term {
		t.Fatalf("the other cluster's term reached this member: %d -> %d", term, got)
	}
	// From this cluster, a stale term: served, and answered with ours.
	resp, err := heartbeat(own, 0)
	if err != nil || resp.Term != term || resp.Success {
		t.Fatalf("a Raft connection from this cluster was not served: %+v, %v", resp, err)
	}
}

// TestLostDiskDaemon runs the refusals through pgherd-dcs itself, with the
// configurations pgherd writes (join kept, cluster_id recorded): an
// emptied joiner and the emptied bootstrap member each exit 1 with one
// line that says what to do, their directories stay empty, and the
// remaining members keep serving writes.
func TestLostDiskDaemon(t *testing.T) {
	c := newProcCluster(t, 3, nil)
	id, err := c.info(0)
	if err != nil || id.ClusterID == "" {
		t.Fatalf("cluster ID: %+v %v", id, err)
	}
	for _, i := range []int{2, 0} { // a joiner, then the bootstrap member
		m := c.members[i]
		m.cfg.ClusterID = id.ClusterID
		c.writeConfig(m)
		c.kill(i)
		emptyDir(t, m.cfg.DataDir)
		os.Truncate(m.log, 0)
		c.launch(i)
		code, log := c.exited(i, 20*time.Second)
		lines := strings.Split(strings.TrimSpace(log), "\n")
		last := lines[len(lines)-1]
		if code != 1 || !strings.HasPrefix(last, "Error: ") || !strings.Contains(last, "pgherd dcs leave "+m.cfg.Name) {
			t.Fatalf("%s: exit %d, want 1 and one line naming `pgherd dcs leave`; log:\n%s", m.cfg.Name, code, log)
		}
		if !dcs.EmptyDir(m.cfg.DataDir) {
			t.Fatalf("%s: the refused start left files in its data dir", m.cfg.Name)
		}
		if i == 2 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := c.client(c.endpoints()[:2]...).Put(ctx, "/after", "x")
			cancel()
			if err != nil {
				t.Fatalf("the two remaining members do not serve writes: %v", err)
			}
		}
	}
}

// TestJoinFromAnotherClusterRefused: a member whose configuration names
// another cluster, pointed at this one's members, is refused and leaves
// nothing behind, neither in the cluster nor in its data directory.
func TestJoinFromAnotherClusterRefused(t *testing.T) {
	c := newCluster(t, 1, nil)
	own := clusterIDOf(t, c.servers[0])
	cfg := memberConfig(t, "stranger")
	cfg.Join = []string{c.servers[0].PeerAddr()}
	cfg.ClusterID = dcs.FormatClusterID(c.servers[0].node.fsm.cluster() ^ 1)
	s, err := Start(testCtx(), cfg)
	if err == nil {
		s.Close()
		t.Fatal("a member of another cluster joined")
	}
	if !strings.Contains(err.Error(), cfg.ClusterID) || !strings.Contains(err.Error(), own) {
		t.Fatalf("want both cluster IDs in the refusal, got: %v", err)
	}
	if ms, _ := c.servers[0].node.members(context.Background()); len(ms) != 1 {
		t.Fatalf("the refused join left %d members", len(ms))
	}
	if !dcs.EmptyDir(cfg.DataDir) {
		t.Fatalf("the refused join left files in %s", cfg.DataDir)
	}
}

// TestLostLogRefusals: a configuration's cluster_id must be 16 hex digits,
// and a data directory whose member.json survived but whose Raft log is
// gone is refused with what to do.
func TestLostLogRefusals(t *testing.T) {
	cfg := memberConfig(t, "n")
	cfg.ClusterID = "not-hex"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "cluster_id \"not-hex\": want 16 hex digits") {
		t.Fatalf("bad cluster_id: %v", err)
	}
	c := newCluster(t, 1, nil)
	cfg = c.cfgs[0]
	c.stop(0)
	if err := os.RemoveAll(filepath.Join(cfg.DataDir, dcs.WALDir)); err != nil {
		t.Fatal(err)
	}
	_, err = Start(testCtx(), cfg)
	if err == nil || !strings.Contains(err.Error(), "raft log (wal/) is missing") || !strings.Contains(err.Error(), "pgherd dcs leave m0`") {
		t.Fatalf("a missing raft log: %v", err)
	}
}
