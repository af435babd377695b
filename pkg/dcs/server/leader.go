package server

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/dcs/mvcc"
)

// leaderLoop runs on every member. On the leader it expires leases,
// initialises the cluster ID and promotes caught-up nonvoters; on every
// member it makes sure the replicated table describes this member as
// configured (a changed client URL is thus published after a restart).
func (n *node) leaderLoop() {
	defer n.wg.Done()
	wake := time.NewTimer(loopTick)
	defer wake.Stop()
	var lastReconcile time.Time
	lastLeader := ""
	recorded := false
	for {
		select {
		case <-n.closed:
			return
		case <-wake.C:
		}
		wake.Reset(n.nextWake())
		if l := n.leaderAddr(); l != lastLeader {
			// Pooled connections to a former leader may be dead (it may
			// have restarted at the same address): drop them rather than
			// fail a forwarded request on one.
			if lastLeader != "" {
				n.client(lastLeader).close()
			}
			lastLeader = l
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if !recorded {
			recorded = n.recordCluster()
		}
		n.checkNotDowngraded()
		n.publishSelf(ctx)
		if n.isLeader() {
			n.expireLeases(ctx)
			n.revokeDeadHolders(ctx)
			if n.fsm.cluster() == 0 {
				n.applyLocal(ctx, encodeInts(opClusterInit, randomID()))
			}
			if time.Since(lastReconcile) > 500*time.Millisecond {
				n.reconcileVoters(ctx)
				n.raiseClusterVersion(ctx)
				lastReconcile = time.Now()
			}
		}
		cancel()
	}
}

// loopTick is the leader loop's period; the leader also wakes at the next
// lease deadline, so that a lease is revoked as it expires, not up to a
// tick later (a dead primary's leader key goes as soon as its TTL allows).
const loopTick = 100 * time.Millisecond

// nextWake is when the leader loop runs again: after loopTick, or sooner on
// the leader when a lease expires before that (never sooner than 1 ms, so
// that a lease whose revoke keeps failing does not spin the loop).
func (n *node) nextWake() time.Duration {
	if !n.isLeader() {
		return loopTick
	}
	if d, ok := n.fsm.store.NextDeadline(); ok {
		return min(loopTick, max(time.Until(d), time.Millisecond))
	}
	return loopTick
}

func (n *node) self() dcs.Member {
	scheme := "http://"
	if n.cfg.PeerTLS.Enabled() {
		scheme = "https://"
	}
	return dcs.Member{Name: n.cfg.Name, Role: n.cfg.Role, Zone: n.cfg.Zone, PeerAddr: n.cfg.AdvertisePeer,
		PeerURL: scheme + n.cfg.AdvertisePeer, ClientURL: n.cfg.AdvertiseClient, ApplyVersion: applyVersion,
		FastFailover: n.cfg.FastFailover}
}

// recordCluster writes the cluster ID into the data directory's
// member.json once the state machine knows it, and reports whether it is
// recorded. A data dir whose member.json predates the record can still
// hold another cluster than the configuration names: the member stops.
func (n *node) recordCluster() bool {
	id := n.fsm.cluster()
	if id == 0 {
		return false
	}
	cid := dcs.FormatClusterID(id)
	if n.cfg.ClusterID != "" && n.cfg.ClusterID != cid {
		select {
		case n.fatal <- otherClusterError(n.cfg, cid):
		default:
		}
		return true
	}
	if n.cfg.ClusterID == "" && len(n.cfg.Join) == 0 {
		n.log.Warn("the configuration records no cluster_id: add `cluster_id: " + cid + "` to it, so that this member refuses to bootstrap a new cluster should it lose its data dir")
	}
	if dcs.RecordedCluster(n.cfg.DataDir) == cid {
		return true
	}
	if err := dcs.WriteIdentity(n.cfg.DataDir, n.cfg.Name, cid); err != nil {
		n.log.Warn("record the cluster ID in the data dir", "err", err)
		return false
	}
	return true
}

func (n *node) publishSelf(ctx context.Context) {
	if m, ok := n.fsm.member(n.cfg.Name); ok && m == n.self() {
		return
	}
	if n.leaderAddr() == "" || !n.inConfig() {
		return
	}
	if err := n.callLeader(ctx, dcs.RPCJoin, n.self()); err != nil {
		n.log.Debug("publish member metadata", "err", err)
	}
}

func (n *node) inConfig() bool {
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return false
	}
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) == n.cfg.Name {
			return true
		}
	}
	return false
}

// expireLeases proposes a revoke for every lease whose deadline has passed
// on the leader's monotonic clock. Deadlines are set by every member when
// it applies a grant or refresh entry, so a new leader's deadlines trail
// the old leader's by the replication delay: never earlier, and not a
// whole TTL later.
func (n *node) expireLeases(ctx context.Context) {
	for _, id := range n.fsm.store.Expired(time.Now()) {
		if _, err := n.applyLocal(ctx, encodeInts(opLeaseRevoke, id)); err != nil && !errors.Is(err, mvcc.ErrLeaseNotFound) {
			n.log.Warn("expire lease", "lease", id, "err", err)
			return
		}
	}
}

func (n *node) role(id raft.ServerID) string {
	if m, ok := n.fsm.member(string(id)); ok && m.Role != "" {
		return m.Role
	}
	return dcs.RoleData
}
