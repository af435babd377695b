package server

import (
	"context"
	"fmt"
	"slices"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The space quota and etcd's NOSPACE alarm.
//
// The leader checks every write it is about to append (its own clients' and
// those forwarded by followers) against its quota_bytes: when the state
// machine's accounted size (mvcc.Store.Usage, the same figure on every
// member) plus the write's cost would exceed it, it refuses the write with
// etcd's `etcdserver: mvcc: database space exceeded` and, once, proposes an
// opAlarm entry that activates NOSPACE. Applying that entry is what arms the
// alarm, on every member at the same log index: from then on every member's
// Apply refuses puts, txns that put and lease grants with the same error
// (deletes, compactions, revokes and keepalives still pass, so space can be
// freed), until an opAlarm DEACTIVATE (`etcdctl alarm disarm`) is applied.
// This is etcd's quotaKVServer plus its capped applier.

// Cost estimates as etcd's quota (kvOverhead, leaseOverhead in etcd's
// server/storage/quota.go): a put costs its encoded size plus 256 bytes.
const (
	putCost   = 256
	grantCost = 64
)

// commandCost is what a command may add to the state: 0 for anything that
// only reads, deletes, refreshes or revokes. A txn costs the larger of its
// branches' puts, nested txns included.
func commandCost(cmd []byte) int64 {
	if len(cmd) == 0 {
		return 0
	}
	switch op(cmd[0]) {
	case opPut:
		return int64(len(cmd)-1) + putCost
	case opLeaseGrant:
		return grantCost
	case opTxn:
		t := &pb.TxnRequest{}
		if t.Unmarshal(cmd[1:]) != nil {
			return 0 // refused when applied
		}
		return txnCost(t)
	}
	return 0
}

func txnCost(t *pb.TxnRequest) int64 {
	branch := func(ops []*pb.RequestOp) int64 {
		var c int64
		for _, o := range ops {
			switch r := o.Request.(type) {
			case *pb.RequestOp_RequestPut:
				c += int64(r.RequestPut.Size()) + putCost
			case *pb.RequestOp_RequestTxn:
				c += txnCost(r.RequestTxn)
			}
		}
		return c
	}
	return max(branch(t.Success), branch(t.Failure))
}

// checkQuota runs on the leader before it appends cmd: a write that would
// take the state past the quota is refused, and the NOSPACE alarm raised
// through the log if it is not already.
func (n *node) checkQuota(ctx context.Context, cmd []byte) error {
	cost := commandCost(cmd)
	if cost == 0 || n.fsm.store.Usage()+cost <= n.cfg.QuotaBytes {
		return nil
	}
	if n.fsm.allows(versionLimits) && !n.fsm.alarmed(pb.AlarmType_NOSPACE) {
		raise, err := encodeMsg(opAlarm, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: n.id, Alarm: pb.AlarmType_NOSPACE})
		if err != nil {
			return err
		}
		if err := n.raft.Apply(raise, applyTimeout(ctx)).Error(); err != nil {
			return mapRaftError(err)
		}
		n.log.Warn("space quota exceeded: NOSPACE alarm raised, writes refused until space is freed and the alarm disarmed",
			"usage_bytes", n.fsm.store.Usage(), "quota_bytes", n.cfg.QuotaBytes)
	}
	return rpctypes.ErrGRPCNoSpace
}

// applyAlarm applies an opAlarm entry, as etcd's applier: ACTIVATE adds the
// alarm, DEACTIVATE removes it; the response lists what changed. Only
// NOSPACE can be activated (the only alarm a member raises; etcd itself
// panics on others), so an entry from a faulty peer changes nothing.
func (f *fsm) applyAlarm(req *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	if !f.allows(versionLimits) {
		return nil, fmt.Errorf("alarm entries are not enabled in this cluster yet")
	}
	switch {
	case req.Action == pb.AlarmRequest_ACTIVATE && req.Alarm != pb.AlarmType_NOSPACE,
		req.Action != pb.AlarmRequest_ACTIVATE && req.Action != pb.AlarmRequest_DEACTIVATE:
		return nil, status.Errorf(codes.InvalidArgument, "etcdserver: alarm entry %s %s not supported: only NOSPACE is raised, and only by the leader", req.Action, req.Alarm)
	}
	resp := &pb.AlarmResponse{}
	m := &pb.AlarmMember{MemberID: req.MemberID, Alarm: req.Alarm}
	f.mu.Lock()
	defer f.mu.Unlock()
	i, found := slices.BinarySearchFunc(f.alarms, m, compareAlarms)
	switch {
	case req.Action == pb.AlarmRequest_ACTIVATE && !found:
		f.alarms = slices.Insert(f.alarms, i, m)
		resp.Alarms = []*pb.AlarmMember{m}
	case req.Action == pb.AlarmRequest_DEACTIVATE && found:
		f.alarms = slices.Delete(f.alarms, i, i+1)
		resp.Alarms = []*pb.AlarmMember{m}
	}
	return resp, nil
}

func compareAlarms(a, b *pb.AlarmMember) int {
	if a.MemberID != b.MemberID {
		if a.MemberID < b.MemberID {
			return -1
		}
		return 1
	}
	return int(a.Alarm) - int(b.Alarm)
}

// alarmed reports whether an alarm of type t is active on any member.
func (f *fsm) alarmed(t pb.AlarmType) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.ContainsFunc(f.alarms, func(m *pb.AlarmMember) bool { return m.Alarm == t })
}

// alarmList answers AlarmRequest GET: the active alarms of type t, or all
// of them for NONE, as etcd's alarm store.
func (f *fsm) alarmList(t pb.AlarmType) *pb.AlarmResponse {
	f.mu.RLock()
	defer f.mu.RUnlock()
	resp := &pb.AlarmResponse{}
	for _, m := range f.alarms {
		if t == pb.AlarmType_NONE || m.Alarm == t {
			resp.Alarms = append(resp.Alarms, m)
		}
	}
	return resp
}

// alarmStrings renders the active alarms as etcdctl alarm list does.
func (f *fsm) alarmStrings() []string {
	var out []string
	for _, m := range f.alarmList(pb.AlarmType_NONE).Alarms {
		out = append(out, strings.TrimSpace(m.String()))
	}
	return out
}

// capped refuses, while NOSPACE is active, what etcd's capped applier
// refuses: puts, txns that may put, lease grants.
func (f *fsm) capped(d decoded) error {
	switch {
	case d.op != opPut && d.op != opTxn && d.op != opLeaseGrant:
		return nil
	case d.op == opTxn && txnCost(d.txn) == 0:
		return nil
	case f.alarmed(pb.AlarmType_NOSPACE):
		return rpctypes.ErrGRPCNoSpace
	}
	return nil
}

// Alarm serves etcd's Maintenance.Alarm: GET lists the active alarms (a
// linearizable read), DEACTIVATE disarms one through the log (etcdctl
// alarm disarm lists them, then deactivates each). Alarms are raised by
// the members themselves: a client's ACTIVATE is refused. As etcd 3.4, the
// answer has no header (etcdctl alarm list -w json prints {}).
func (m *maintenanceServer) Alarm(ctx context.Context, req *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	resp := &pb.AlarmResponse{}
	switch req.Action {
	case pb.AlarmRequest_GET:
		if err := m.s.node.leaderRead(ctx, readAlarms, req, resp); err != nil {
			return nil, toGRPC(err)
		}
		return resp, nil
	case pb.AlarmRequest_DEACTIVATE:
		if !m.s.node.fsm.allows(versionLimits) {
			return resp, nil // no alarm can have been raised
		}
		cmd, err := encodeMsg(opAlarm, req)
		if err != nil {
			return nil, err
		}
		out, err := m.s.node.propose(ctx, cmd)
		if err != nil {
			return nil, toGRPC(err)
		}
		if r, ok := out.(*pb.AlarmResponse); ok {
			resp.Alarms = r.Alarms
		}
		return resp, nil
	}
	return nil, status.Error(codes.InvalidArgument, "etcdserver: alarms are raised by the members themselves (NOSPACE when the space quota is exceeded); a client can list and disarm them, not activate one")
}
