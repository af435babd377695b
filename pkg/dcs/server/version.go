package server

import (
	"context"
	"fmt"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// The cluster version, as etcd has one: members of two pgherd versions
// must apply the same log the same way. Each member advertises, in the
// replicated member table, the newest version of the Apply rules its
// binary speaks (applyVersion); the leader proposes the cluster version =
// the minimum over every member in the Raft configuration (voters and
// nonvoters alike: all of them apply the log), and never lowers it. A
// member that speaks less than the cluster version cannot join.
//
// A change to what Apply does, a new command op or a new field in the
// state, gets the next version: bump applyVersion, add a constant below,
// and
//   - propose the new op only when n.allows(thatVersion), answering
//     clients as the old code would until then;
//   - in Apply, take the new rule only when f.clusterVersion() is at least
//     that version: the cluster version is replicated state, so every
//     member switches at the same log index.
//
// A snapshot carries the cluster version it was taken at (fsm.go); a
// member refuses one newer than applyVersion.
const (
	// versionBase is what every pgherd applied before cluster versions
	// existed; a member that advertises no version speaks it.
	versionBase = 1
	// versionClusterVersion adds opClusterVersion and the cluster ID in the
	// Raft connection handshake (peer.go).
	versionClusterVersion = 2
	// versionLimits: Apply refuses what checkCommand refuses (validate.go),
	// and the NOSPACE alarm exists (opAlarm, alarm.go).
	versionLimits = 3
	// versionHeldLeader: Apply refuses a put that changes the holder of a
	// leader key declared for host-aware revocation while its lease lives
	// (fsm.declaredLeaderKey).
	versionHeldLeader = 4

	// applyVersion is the newest version this binary applies.
	applyVersion = versionHeldLeader
)

// clusterVersion is the replicated cluster version at the state machine's
// last applied entry.
func (f *fsm) clusterVersion() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return max(f.version, versionBase)
}

// allows reports whether the cluster runs at version v or newer, so that
// this member may propose what version v introduced.
func (n *node) allows(v int) bool { return n.fsm.allows(v) }

// allows tells whether the cluster version is at least v: replicated
// state, so every member answers the same at the same log index.
func (f *fsm) allows(v int) bool { return f.clusterVersion() >= v }

// memberVersion is the apply version a member advertises.
func memberVersion(m dcs.Member) int { return max(m.ApplyVersion, versionBase) }

// raiseClusterVersion, on the leader, proposes the minimum version over
// every member in the configuration when it exceeds the cluster's. A
// member with no metadata yet counts as the oldest.
func (n *node) raiseClusterVersion(ctx context.Context) {
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	least := applyVersion
	for _, s := range cf.Configuration().Servers {
		m, ok := n.fsm.member(string(s.ID))
		if !ok {
			return
		}
		least = min(least, memberVersion(m))
	}
	if least <= n.fsm.clusterVersion() {
		return
	}
	if _, err := n.applyLocal(ctx, encodeInts(opClusterVersion, int64(least))); err != nil {
		n.log.Warn("raise cluster version", "version", least, "err", err)
		return
	}
	n.log.Info("cluster version raised", "version", least)
}

// checkNotDowngraded reports, once, a cluster version newer than this
// binary applies: the member runs an older pgherd than the cluster already
// uses, would misapply what follows, and stops instead.
func (n *node) checkNotDowngraded() {
	if cv := n.fsm.clusterVersion(); cv > applyVersion {
		select {
		case n.fatal <- fmt.Errorf("the cluster runs at cluster version %d, and this pgherd-dcs applies only up to %d: install the pgherd the other members run (a cluster version is never lowered)", cv, applyVersion):
		default:
		}
	}
}

// checkJoinVersion refuses a newcomer that speaks less than the cluster
// version: it would misapply the log.
func (n *node) checkJoinVersion(mem dcs.Member) error {
	if v, cv := memberVersion(mem), n.fsm.clusterVersion(); v < cv {
		return fmt.Errorf("member %s runs a pgherd that applies cluster version %d, but the cluster runs at %d: upgrade pgherd on that host first", mem.Name, v, cv)
	}
	return nil
}

// raftHello is what this member writes after dcs.ProtoRaftHello when it
// dials a peer for Raft: the cluster ID it belongs to (0 while unknown).
// Until the cluster version allows it, the member dials with the plain
// dcs.ProtoRaft byte that older members expect.
func (n *node) raftHello() (proto byte, id uint64) {
	if !n.allows(versionClusterVersion) {
		return dcs.ProtoRaft, 0
	}
	return dcs.ProtoRaftHello, n.fsm.cluster()
}

// foreignCluster reports whether a Raft peer's cluster ID shows that it
// belongs to another cluster. Either side not knowing its ID yet (a
// member that is joining, a cluster whose first leader has not drawn it)
// is not a mismatch.
func (n *node) foreignCluster(peer uint64) bool {
	own := n.fsm.cluster()
	return peer != 0 && own != 0 && peer != own
}
