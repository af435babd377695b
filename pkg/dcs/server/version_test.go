package server

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs"
)

func persisted(t *testing.T, f *fsm) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

// TestSnapshotCarriesClusterVersion: a snapshot names the cluster version
// it was taken at; before version 2 its header is the one every pgherd
// wrote (older members read it), and a member refuses a snapshot of a newer
// cluster version than it applies with what to do, keeping its state.
func TestSnapshotCarriesClusterVersion(t *testing.T) {
	f := newFSM(100)
	f.apply(decoded{op: opClusterInit, ints: []int64{7}})
	if got := persisted(t, f); !bytes.HasPrefix(got, []byte("pgherd-dcs-snapshot-v1\n")) {
		t.Fatalf("a version-1 snapshot starts with %q", got[:24])
	}
	f.apply(decoded{op: opClusterVersion, ints: []int64{versionClusterVersion}})
	snap := persisted(t, f)
	if !bytes.HasPrefix(snap, []byte("pgherd-dcs-snapshot-v2\n")) {
		t.Fatalf("a version-2 snapshot starts with %q", snap[:24])
	}
	g := newFSM(100)
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if g.clusterVersion() != versionClusterVersion || g.cluster() != 7 {
		t.Fatalf("restored version %d cluster %d", g.clusterVersion(), g.cluster())
	}
	newer := append([]byte("pgherd-dcs-snapshot-v99\n"), snap[len("pgherd-dcs-snapshot-v2\n"):]...)
	err := g.Restore(io.NopCloser(bytes.NewReader(newer)))
	if err == nil || !strings.Contains(err.Error(), "cluster version 99") || !strings.Contains(err.Error(), "upgrade pgherd") {
		t.Fatalf("want a refusal naming version 99 and the upgrade, got %v", err)
	}
	for _, bad := range []string{"", "PGDMP", "pgherd-dcs-snapshot-v\n", "pgherd-dcs-snapshot-v0\n", "pgherd-dcs-snapshot-vx\n"} {
		if err := g.Restore(io.NopCloser(strings.NewReader(bad))); err == nil || err.Error() != "restore snapshot: not a pgherd dcs snapshot" {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if g.clusterVersion() != versionClusterVersion || g.cluster() != 7 {
		t.Fatal("the refused restores changed the state")
	}
}

// TestClusterVersion: every member advertises the version it applies, the
// leader raises the cluster version to the minimum, every member applies
// it, and a newcomer that applies less than the cluster version is refused.
func TestClusterVersion(t *testing.T) {
	c := newCluster(t, 3, nil)
	for _, s := range c.servers {
		waitFor(t, 10*time.Second, s.Name()+" at cluster version 2", func() bool {
			return s.node.fsm.clusterVersion() == versionClusterVersion
		})
	}
	lead := c.servers[c.leader()]
	old := dcs.Member{Name: "old", Role: dcs.RoleData, PeerAddr: "127.0.0.1:1"} // no apply_version: version 1
	err := lead.node.callLeader(ctxT(t, 10*time.Second), dcs.RPCJoin, old)
	if err == nil || !strings.Contains(err.Error(), "upgrade pgherd") {
		t.Fatalf("a member applying version 1 joined a version-2 cluster: %v", err)
	}
	if _, ok := lead.node.fsm.member("old"); ok {
		t.Fatal("the refused member is in the member table")
	}
}

// TestDowngradedMemberStops: a member whose binary applies less than the
// replicated cluster version (pgherd was downgraded under it) stops
// rather than misapply the log.
func TestDowngradedMemberStops(t *testing.T) {
	c := newCluster(t, 1, nil)
	s := c.servers[0]
	if _, err := s.node.applyLocal(ctxT(t, 10*time.Second), encodeInts(opClusterVersion, applyVersion+1)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.node.fatal:
		if !strings.Contains(err.Error(), "install the pgherd the other members run") {
			t.Fatalf("unclear error: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a member below the cluster version kept running")
	}
}

// currentFSM is a state machine at this binary's cluster version, as on a
// cluster whose members all run it: every Apply rule is in force.
func currentFSM() *fsm {
	f := newFSM(0)
	f.version = applyVersion
	return f
}
