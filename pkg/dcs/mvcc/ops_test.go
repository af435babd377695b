package mvcc

import (
	"bytes"
	"fmt"
	"math/rand/v2"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/status"
)

// op is one random log entry; exactly one field is set (compact is a distance below the current
// revision, so it stays meaningful whatever the revision; at least 1: etcd accepts a first
// compaction at 0, this store does not).
type op struct {
	put     *pb.PutRequest
	del     *pb.DeleteRangeRequest
	txn     *pb.TxnRequest
	rng     *pb.RangeRequest
	grant   *pb.LeaseGrantRequest
	revoke  int64
	refresh int64
	compact *int64
}

// randomOps returns n random operations over a small key space: puts (some with leases and options),
// deletes of keys and ranges, txns with nested txns, ranges with options, lease grants, revokes and
// (withRefresh) refreshes, and compactions. Some fail (unknown leases, compacted revisions, duplicate
// keys), as they would in a real log. Lease IDs are 1 to 3 and always given, as our proposers do.
func randomOps(seed uint64, n int, withRefresh bool) []op {
	r := rand.New(rand.NewPCG(seed, 1))
	key := func() []byte { return []byte(fmt.Sprintf("/k/%d", r.IntN(12))) }
	lease := func() int64 { return int64(r.IntN(4)) } // 0 means none
	coin := func(n int) bool { return r.IntN(n) == 0 }
	var ops []op
	for len(ops) < n {
		k, k2, v := key(), key(), []byte(fmt.Sprint(r.IntN(100)))
		end := k2
		switch c := bytes.Compare(k, k2); {
		case c == 0:
			end = nil
		case c > 0:
			k, end = k2, k
		}
		if coin(8) {
			end = []byte{0} // every key >= k
		}
		switch r.IntN(11) {
		case 0, 1, 2:
			p := &pb.PutRequest{Key: k, Value: v, Lease: lease(), PrevKv: coin(2)}
			if coin(8) {
				p.Value, p.IgnoreValue = nil, true
			}
			if coin(8) {
				p.Lease, p.IgnoreLease = 0, true
			}
			ops = append(ops, op{put: p})
		case 3:
			ops = append(ops, op{del: &pb.DeleteRangeRequest{Key: k, RangeEnd: end, PrevKv: coin(2)}})
		case 4, 5:
			c := &pb.Compare{Key: k, RangeEnd: end, Target: pb.Compare_CompareTarget(r.IntN(5)), Result: pb.Compare_CompareResult(r.IntN(4))}
			switch n := int64(r.IntN(60)); c.Target {
			case pb.Compare_VALUE:
				c.TargetUnion = &pb.Compare_Value{Value: v}
			case pb.Compare_CREATE:
				c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: n}
			case pb.Compare_MOD:
				c.TargetUnion = &pb.Compare_ModRevision{ModRevision: n}
			case pb.Compare_VERSION:
				c.TargetUnion = &pb.Compare_Version{Version: n % 4}
			case pb.Compare_LEASE:
				c.TargetUnion = &pb.Compare_Lease{Lease: n % 4}
			}
			delEnd := ""
			switch r.IntN(4) {
			case 0:
				delEnd = string(key())
			case 1:
				delEnd = "\x00"
			}
			nested := &pb.TxnRequest{
				Compare: []*pb.Compare{cmpCreate(string(k2), 0)},
				Success: []*pb.RequestOp{opPut(string(k2), "nested", 0)},
			}
			if coin(3) {
				nested.Failure = []*pb.RequestOp{opPut(string(key()), "else", 0), opDel(string(key()), "")}
			}
			ops = append(ops, op{txn: &pb.TxnRequest{
				Compare: []*pb.Compare{c, {Key: k2, Target: pb.Compare_VERSION, Result: pb.Compare_LESS, TargetUnion: &pb.Compare_Version{Version: int64(r.IntN(5))}}},
				Success: []*pb.RequestOp{opPut(string(k), "txn", lease()), opDel(string(k2), delEnd), opGet(string(k), 0)},
				Failure: []*pb.RequestOp{opTxn(nested), opPut(string(key()), "outer", 0)},
			}})
		case 6:
			ops = append(ops, op{rng: &pb.RangeRequest{
				Key: k, RangeEnd: end, Limit: int64(r.IntN(3)), KeysOnly: coin(4), CountOnly: coin(6),
				SortTarget: pb.RangeRequest_SortTarget(r.IntN(5)), SortOrder: pb.RangeRequest_SortOrder(r.IntN(3)),
				Revision: -int64(r.IntN(40)), // made absolute when applied
			}})
			if coin(4) {
				last := ops[len(ops)-1].rng
				last.MinModRevision, last.MaxCreateRevision = int64(r.IntN(100)), int64(r.IntN(200))
			}
		case 7:
			ops = append(ops, op{grant: &pb.LeaseGrantRequest{ID: 1 + int64(r.IntN(3)), TTL: 20 + int64(r.IntN(3))}})
		case 8:
			ops = append(ops, op{revoke: 1 + int64(r.IntN(3))})
		case 9:
			if withRefresh {
				ops = append(ops, op{refresh: 1 + int64(r.IntN(3))})
			}
		case 10:
			back := int64(r.IntN(30))
			ops = append(ops, op{compact: &back})
		}
	}
	return ops
}

// render prints a response or an error in a form equal for equal results: headers keep only the
// revision, errors only their message.
func render(resp interface{ String() string }, err error) string {
	if err != nil {
		return "error: " + status.Convert(err).Message()
	}
	return resp.String()
}

// absolute turns the relative revision of a generated range into an absolute one (0 = current).
func (o op) absolute(rev int64) *pb.RangeRequest {
	r := *o.rng
	if r.Revision < 0 {
		r.Revision = max(rev+r.Revision, 1)
	}
	return &r
}

// apply applies the op to the store and renders the result.
func (o op) apply(s *Store) string {
	switch {
	case o.put != nil:
		return render(s.Put(o.put))
	case o.del != nil:
		return render(s.DeleteRange(o.del))
	case o.txn != nil:
		return render(s.Txn(o.txn))
	case o.rng != nil:
		return render(s.Range(o.absolute(s.Rev())))
	case o.grant != nil:
		return render(s.LeaseGrant(o.grant))
	case o.revoke != 0:
		return render(s.LeaseRevoke(o.revoke))
	case o.refresh != 0:
		return render(s.LeaseRefresh(o.refresh, 20))
	case o.compact != nil:
		err := s.Compact(max(s.Rev()-*o.compact, 1))
		return render(&pb.CompactionResponse{}, err)
	}
	return ""
}
