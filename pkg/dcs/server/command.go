package server

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// A command is one Raft log entry: a one-byte op followed by its payload.
// Encoding and decoding are pure functions so that the FSM stays a thin
// dispatcher and the same bytes travel unchanged when a follower forwards
// a write to the leader.
type op byte

const (
	opPut op = iota + 1
	opDeleteRange
	opTxn
	opLeaseGrant
	opLeaseRevoke
	opLeaseRefresh // lease ID and TTL: every member resets the deadline to its own now + TTL
	opCompact
	opMemberSet    // JSON Member
	opMemberRemove // JSON Member (only Name is read)
	opClusterInit  // cluster ID, applied once by the bootstrapping member
	opAlarm        // etcd AlarmRequest, ACTIVATE or DEACTIVATE (from versionLimits on)
	// opClusterVersion raises the cluster version (version.go). Proposed
	// only once every member speaks version 2; older members answer
	// "unknown command op" for it.
	opClusterVersion
)

// message is what gogo-generated etcd types implement.
type message interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
	Size() int
}

func encodeMsg(o op, m message) ([]byte, error) {
	b := make([]byte, 1+m.Size())
	b[0] = byte(o)
	if _, err := m.(interface{ MarshalTo([]byte) (int, error) }).MarshalTo(b[1:]); err != nil {
		return nil, fmt.Errorf("encode command %d: %w", o, err)
	}
	return b, nil
}

func encodeInts(o op, v ...int64) []byte {
	b := []byte{byte(o)}
	for _, x := range v {
		b = binary.AppendVarint(b, x)
	}
	return b
}

func decodeInts(p []byte, n int) ([]int64, error) {
	out := make([]int64, n)
	for i := range out {
		v, k := binary.Varint(p)
		if k <= 0 {
			return nil, fmt.Errorf("truncated command")
		}
		out[i], p = v, p[k:]
	}
	return out, nil
}

func encodeJSON(o op, v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte{byte(o)}, j...), nil
}

// decoded is a command after decoding: exactly one field is set.
type decoded struct {
	op      op
	put     *pb.PutRequest
	del     *pb.DeleteRangeRequest
	txn     *pb.TxnRequest
	grant   *pb.LeaseGrantRequest
	alarm   *pb.AlarmRequest
	ints    []int64 // revoke: id; refresh: id, ttl; compact: rev; cluster init: id; cluster version
	member  *dcs.Member
	rawSize int
}

func decodeCommand(b []byte) (decoded, error) {
	d := decoded{rawSize: len(b)}
	if len(b) == 0 {
		return d, fmt.Errorf("empty command")
	}
	d.op, b = op(b[0]), b[1:]
	var m message
	var err error
	switch d.op {
	case opPut:
		d.put = &pb.PutRequest{}
		m = d.put
	case opDeleteRange:
		d.del = &pb.DeleteRangeRequest{}
		m = d.del
	case opTxn:
		d.txn = &pb.TxnRequest{}
		m = d.txn
	case opLeaseGrant:
		d.grant = &pb.LeaseGrantRequest{}
		m = d.grant
	case opAlarm:
		d.alarm = &pb.AlarmRequest{}
		m = d.alarm
	case opLeaseRevoke, opCompact, opClusterInit, opClusterVersion:
		d.ints, err = decodeInts(b, 1)
		return d, err
	case opLeaseRefresh:
		d.ints, err = decodeInts(b, 2)
		return d, err
	case opMemberSet, opMemberRemove:
		d.member = &dcs.Member{}
		return d, json.Unmarshal(b, d.member)
	default:
		return d, fmt.Errorf("unknown command op %d", d.op)
	}
	return d, m.Unmarshal(b)
}
