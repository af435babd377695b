package server

import (
	"math"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pgherd/pgherd/pkg/dcs/mvcc"
)

// checkCommand is the one check of every command that may enter the Raft
// log: the client API runs it before proposing, the leader runs it again
// on every command a peer forwards (a peer cannot skip it), and Apply runs
// it on every committed entry, so that an entry that slipped past both
// (an older member's, a forged one) fails the same way on every member
// instead of reaching the store. Only what etcd checks before consensus
// is checked here, with etcd's errors: the request's size, the shape of
// puts, deletes, ranges and txns (empty keys, sort options, op counts),
// and lease TTLs. It reads fields only and allocates nothing.
func checkCommand(d *decoded) error {
	if d.rawSize-1 > mvcc.MaxRequestBytes {
		return rpctypes.ErrGRPCRequestTooLarge
	}
	switch d.op {
	case opPut:
		return mvcc.CheckPut(d.put)
	case opDeleteRange:
		return mvcc.CheckDeleteRange(d.del)
	case opTxn:
		return mvcc.CheckTxn(d.txn)
	case opLeaseGrant:
		if d.grant.TTL > mvcc.MaxLeaseTTL {
			return rpctypes.ErrGRPCLeaseTTLTooLarge
		}
	case opLeaseRefresh:
		// Only 0 (the granted TTL) is ever proposed; the store also caps a
		// refresh at the granted TTL.
		if d.ints[1] > mvcc.MaxLeaseTTL {
			return rpctypes.ErrGRPCLeaseTTLTooLarge
		}
	}
	return nil
}

// checkRequest runs checkCommand on a request about to be encoded as a
// command of size bytes, without decoding it again.
func checkRequest(o op, m message, size int) error {
	d := decoded{op: o, rawSize: size}
	switch r := m.(type) {
	case *pb.PutRequest:
		d.put = r
	case *pb.DeleteRangeRequest:
		d.del = r
	case *pb.TxnRequest:
		d.txn = r
	case *pb.LeaseGrantRequest:
		d.grant = r
	}
	return checkCommand(&d)
}

// forwardable tells which commands a peer may forward for the leader to
// propose: those the client API proposes (an alarm only to disarm it:
// only the leader raises one). Membership and cluster commands are the
// leader's own (RPCJoin and RPCRemove reach it as such).
func forwardable(d *decoded) bool {
	switch d.op {
	case opPut, opDeleteRange, opTxn, opLeaseGrant, opLeaseRevoke, opLeaseRefresh, opCompact:
		return true
	case opAlarm:
		return d.alarm.Action == pb.AlarmRequest_DEACTIVATE
	}
	return false
}

// errNotForwardable refuses a forwarded command that only the leader may propose.
var errNotForwardable = status.Error(codes.InvalidArgument, "etcdserver: this command cannot be forwarded by a peer")

// minLeaseTTL is etcd's minimum lease TTL for this member's timing: one
// and a half election timeouts, in whole seconds rounded up (2 s for the
// default heartbeat of 1 s, as etcd's default). A shorter lease could
// expire during an ordinary election. A grant below it is raised to it
// before it is proposed, as etcd's lessor does.
func minLeaseTTL(election time.Duration) int64 {
	return int64(math.Ceil((3 * election / 2).Seconds()))
}

// raiseTTL applies minLeaseTTL to a grant; it reports whether it changed it.
func raiseTTL(g *pb.LeaseGrantRequest, election time.Duration) bool {
	if m := minLeaseTTL(election); g.TTL < m {
		g.TTL = m
		return true
	}
	return false
}

// admitForwarded checks a command a peer forwards exactly as the client
// API checks its own (checkCommand, and the minimum lease TTL), and
// returns the command to propose.
func (n *node) admitForwarded(cmd []byte) ([]byte, error) {
	d, err := decodeCommand(cmd)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "etcdserver: "+err.Error())
	}
	if !forwardable(&d) {
		return nil, errNotForwardable
	}
	if err := checkCommand(&d); err != nil {
		return nil, err
	}
	if d.op == opLeaseGrant && raiseTTL(d.grant, n.cfg.HeartbeatTimeout) {
		return encodeMsg(opLeaseGrant, d.grant)
	}
	return cmd, nil
}
