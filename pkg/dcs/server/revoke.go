package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/dcs/mvcc"
)

// Host-aware revocation (docs/ha-witness.md, "Host-aware revocation").
// A data member may declare (dcs.FastFailover, from site.yaml
// patroni.dcs.embedded.fast_failover) that Patroni member Node runs beside
// it. When Node holds Patroni's leader key, the leader revokes that key's
// lease early, without waiting out its TTL, once both hold:
//
//   - the member beside it has not answered the leader's heartbeat for
//     Detect (counted from the leader's election at the earliest), and
//   - the lease has not been refreshed for LoopWait + Detect.
//
// The first says the host looks dead; the second that its Patroni, which
// refreshes every LoopWait, has been silent as long. Either alone is
// ordinary: a DCS member restarts while its Patroni goes on through
// another member, a Patroni pauses while its host is fine. Detect exceeds
// what an isolated primary needs to stop by itself (retry_timeout, its
// demotion, a loop overrun), and pgherd arms the rule only with Patroni's
// synchronous_mode_strict, so a primary that is alive but cut off cannot
// acknowledge a commit once its synchronous standby has been promoted.
// The revoke is an ordinary opLeaseRevoke through Raft: every member
// deletes the key at the same index, and Patroni's replicas see the DELETE.

// revokeVerdict is the pure rule: whether a lease held beside a member
// may be revoked at now, and, if so, why (for the log).
func revokeVerdict(now, lastSeen, refreshed time.Time, ff dcs.FastFailover) (bool, string) {
	if lastSeen.IsZero() || refreshed.IsZero() {
		return false, ""
	}
	silent, stale := now.Sub(lastSeen), now.Sub(refreshed)
	if silent < ff.Detect || stale < ff.LoopWait+ff.Detect {
		return false, ""
	}
	return true, fmt.Sprintf("its host's DCS member has not answered for %s (detect %s) and the lease has not been refreshed for %s (loop_wait + detect %s)",
		silent.Round(time.Millisecond), ff.Detect, stale.Round(time.Millisecond), ff.LoopWait+ff.Detect)
}

// revocations counts the leases this member revoked by the host-aware
// rule since it started (dcs status: host_aware_revocations).
type revocations struct{ n atomic.Uint64 }

// revokeDeadHolders applies the host-aware rule on the leader to every
// declaring data member other than itself (the leader is in contact with
// its own host).
func (n *node) revokeDeadHolders(ctx context.Context) {
	now := time.Now()
	for _, m := range n.fsm.memberList() {
		ff := m.FastFailover
		if !ff.Armed() || m.Role != dcs.RoleData || m.Name == n.cfg.Name {
			continue
		}
		id, ok := n.heldBy(ff)
		if !ok || !n.strictSync(ff) {
			continue
		}
		refreshed, _ := n.fsm.store.LeaseRefreshed(id)
		if ok, _ := revokeVerdict(now, n.contacts.lastSeen(m.Name), refreshed, ff); !ok {
			continue
		}
		// Decide again on state known to be current: a new leader may not
		// have applied its predecessor's last refreshes yet.
		if err := n.linearize(ctx); err != nil {
			return
		}
		if id2, ok := n.heldBy(ff); !ok || id2 != id || !n.strictSync(ff) {
			continue
		}
		refreshed, _ = n.fsm.store.LeaseRefreshed(id)
		ok, why := revokeVerdict(time.Now(), n.contacts.lastSeen(m.Name), refreshed, ff)
		if !ok {
			continue
		}
		if _, err := n.applyLocal(ctx, encodeInts(opLeaseRevoke, id)); err != nil {
			if !errors.Is(err, mvcc.ErrLeaseNotFound) {
				n.log.Warn("host-aware revocation failed", "key", ff.LeaderKey, "holder", ff.Node, "lease", id, "err", err)
			}
			continue
		}
		n.revoked.n.Add(1)
		n.log.Warn(fmt.Sprintf("host-aware revocation: revoked lease %d of %s held by %s beside member %s: %s",
			id, ff.LeaderKey, ff.Node, m.Name, why))
	}
}

// strictSync reports whether Patroni's cluster-wide configuration, the
// key config beside the leader key, has synchronous_mode and
// synchronous_mode_strict on. pgherd arms the rule only then, but the
// configuration can change later (patroni edit-config); the leader checks
// it before every revocation.
func (n *node) strictSync(ff dcs.FastFailover) bool {
	resp, err := n.fsm.store.Range(&pb.RangeRequest{Key: []byte(path.Join(path.Dir(ff.LeaderKey), "config"))})
	if err != nil || len(resp.Kvs) != 1 {
		return false
	}
	return strictIn(resp.Kvs[0].Value)
}

// strictIn reads Patroni's configuration JSON: both modes must be true
// (Patroni also takes the strings "on" and "true"; pgherd writes booleans).
func strictIn(config []byte) bool {
	var c struct {
		Sync   any `json:"synchronous_mode"`
		Strict any `json:"synchronous_mode_strict"`
	}
	if json.Unmarshal(config, &c) != nil {
		return false
	}
	on := func(v any) bool {
		switch v := v.(type) {
		case bool:
			return v
		case string:
			return v == "true" || v == "on"
		}
		return false
	}
	return on(c.Sync) && on(c.Strict)
}

// heldBy returns the lease of ff's leader key when Node holds it.
func (n *node) heldBy(ff dcs.FastFailover) (int64, bool) {
	resp, err := n.fsm.store.Range(&pb.RangeRequest{Key: []byte(ff.LeaderKey)})
	if err != nil || len(resp.Kvs) != 1 {
		return 0, false
	}
	kv := resp.Kvs[0]
	if kv.Lease == 0 || string(kv.Value) != ff.Node {
		return 0, false
	}
	return kv.Lease, true
}
