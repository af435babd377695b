package mvcc

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func cmpCreate(key string, rev int64) *pb.Compare {
	return &pb.Compare{Key: []byte(key), Target: pb.Compare_CREATE, TargetUnion: &pb.Compare_CreateRevision{CreateRevision: rev}}
}

func opPut(key, value string, lease int64) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(key), Value: []byte(value), Lease: lease}}}
}

func opDel(key, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(key), RangeEnd: []byte(end)}}}
}

func opGet(key string, rev int64) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(key), Revision: rev}}}
}

func opTxn(t *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: t}}
}

// TestTxnPatroniLeaderRace is Patroni's leader race and leader update (>= 3.0.3): CREATE==0 → put with
// lease; VALUE==name → put, failure → nested CREATE==0 → put.
func TestTxnPatroniLeaderRace(t *testing.T) {
	s := New(Options{})
	mustGrant(t, s, 1, 20)
	mustGrant(t, s, 2, 20)
	race := func(name string, lease int64) *pb.TxnResponse {
		r, err := s.Txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpCreate("/leader", 0)}, Success: []*pb.RequestOp{opPut("/leader", name, lease)}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := race("n1", 1); !r.Succeeded || r.Header.Revision != 2 || r.Responses[0].GetResponsePut().Header.Revision != 2 {
		t.Fatalf("first race = %v", r)
	}
	if r := race("n2", 2); r.Succeeded || r.Header.Revision != 2 || len(r.Responses) != 0 || s.Rev() != 2 {
		t.Fatalf("lost race = %v (rev %d)", r, s.Rev())
	}

	update := func(name string, lease int64) *pb.TxnResponse {
		r, err := s.Txn(&pb.TxnRequest{
			Compare: []*pb.Compare{{Key: []byte("/leader"), Target: pb.Compare_VALUE, TargetUnion: &pb.Compare_Value{Value: []byte(name)}}},
			Success: []*pb.RequestOp{opPut("/leader", name, lease)},
			Failure: []*pb.RequestOp{opTxn(&pb.TxnRequest{Compare: []*pb.Compare{cmpCreate("/leader", 0)}, Success: []*pb.RequestOp{opPut("/leader", name, lease)}})},
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := update("n2", 2); r.Succeeded || r.Responses[0].GetResponseTxn().Succeeded || s.Rev() != 2 {
		t.Fatalf("update by non-holder = %v", r)
	}
	if _, err := s.LeaseRevoke(1); err != nil {
		t.Fatal(err)
	}
	r := update("n2", 2)
	nested := r.Responses[0].GetResponseTxn()
	// As etcd: a nested txn's header is empty, its ops' headers carry the revision.
	if r.Succeeded || !nested.Succeeded || nested.Header.Revision != 0 || nested.Responses[0].GetResponsePut().Header.Revision != 4 {
		t.Fatalf("takeover through nested txn = %v", r)
	}
	if kv := get(t, s, &pb.RangeRequest{Key: []byte("/leader")}).Kvs[0]; string(kv.Value) != "n2" || kv.Lease != 2 || kv.CreateRevision != 4 {
		t.Fatalf("leader kv = %v", kv)
	}
}

func TestTxnCompares(t *testing.T) {
	s := New(Options{})
	mustGrant(t, s, 5, 20)
	put(t, s, "k1", "b")                                                                              // 2
	put(t, s, "k2", "b")                                                                              // 3
	if _, err := s.Put(&pb.PutRequest{Key: []byte("k2"), Value: []byte("c"), Lease: 5}); err != nil { // 4
		t.Fatal(err)
	}
	c := func(key, end string, target pb.Compare_CompareTarget, result pb.Compare_CompareResult) *pb.Compare {
		cmp := &pb.Compare{Key: []byte(key), RangeEnd: []byte(end), Target: target, Result: result}
		switch target {
		case pb.Compare_VALUE:
			cmp.TargetUnion = &pb.Compare_Value{Value: []byte("b")}
		case pb.Compare_VERSION:
			cmp.TargetUnion = &pb.Compare_Version{Version: 1}
		case pb.Compare_CREATE:
			cmp.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: 3}
		case pb.Compare_MOD:
			cmp.TargetUnion = &pb.Compare_ModRevision{ModRevision: 2}
		case pb.Compare_LEASE:
			cmp.TargetUnion = &pb.Compare_Lease{Lease: 5}
		}
		return cmp
	}
	for _, tc := range []struct {
		cmp  *pb.Compare
		want bool
	}{
		{c("k1", "", pb.Compare_VALUE, pb.Compare_EQUAL), true},
		{c("k2", "", pb.Compare_VALUE, pb.Compare_GREATER), true},
		{c("k2", "", pb.Compare_VALUE, pb.Compare_LESS), false},
		{c("k1", "k3", pb.Compare_VALUE, pb.Compare_EQUAL), false},     // k2 differs
		{c("k1", "k3", pb.Compare_VALUE, pb.Compare_NOT_EQUAL), false}, // k1 equal
		{c("zz", "", pb.Compare_VALUE, pb.Compare_NOT_EQUAL), false},   // missing key: VALUE always false
		{c("zz", "", pb.Compare_VERSION, pb.Compare_LESS), true},       // missing key compares as zero
		{c("k1", "", pb.Compare_VERSION, pb.Compare_EQUAL), true},
		{c("k2", "", pb.Compare_VERSION, pb.Compare_GREATER), true},
		{c("k2", "", pb.Compare_CREATE, pb.Compare_EQUAL), true},
		{c("k1", "k3", pb.Compare_CREATE, pb.Compare_LESS), false},
		{c("k1", "", pb.Compare_MOD, pb.Compare_EQUAL), true},
		{c("k1", "k3", pb.Compare_MOD, pb.Compare_GREATER), false},
		{c("k2", "", pb.Compare_LEASE, pb.Compare_EQUAL), true},
		{c("k1", "", pb.Compare_LEASE, pb.Compare_NOT_EQUAL), true},
		{c("k", "\x00", pb.Compare_MOD, pb.Compare_GREATER), false},
		{c("k2", "\x00", pb.Compare_MOD, pb.Compare_GREATER), true},
	} {
		r, err := s.Txn(&pb.TxnRequest{Compare: []*pb.Compare{tc.cmp}})
		if err != nil || r.Succeeded != tc.want {
			t.Errorf("compare %v: succeeded=%v err=%v, want %v", tc.cmp, r.GetSucceeded(), err, tc.want)
		}
	}
	if s.Rev() != 4 {
		t.Fatalf("txns without writes moved the revision to %d", s.Rev())
	}
}

func TestTxnOneRevisionAndReads(t *testing.T) {
	s := New(Options{})
	put(t, s, "a", "1") // 2
	put(t, s, "b", "1") // 3
	r, err := s.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
		opPut("c", "1", 0), opDel("a", "b"), opGet("c", 0), opGet("a", 3), opDel("nothing", ""),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Succeeded || r.Header.Revision != 4 || s.Rev() != 4 {
		t.Fatalf("txn = %v, rev %d", r, s.Rev())
	}
	if got := keysOf(r.Responses[2].GetResponseRange().Kvs); got != "c=1@4/4/1 " {
		t.Errorf("range inside txn sees %q", got)
	}
	if got := keysOf(r.Responses[3].GetResponseRange().Kvs); got != "a=1@2/2/1 " {
		t.Errorf("historic range inside txn sees %q", got)
	}
	if r.Responses[1].GetResponseDeleteRange().Deleted != 1 || r.Responses[4].GetResponseDeleteRange().Header.Revision != 4 {
		t.Errorf("delete responses %v", r.Responses)
	}
	// The txn's events share one revision, in op order.
	if h := s.history[len(s.history)-1]; h.rev != 4 || len(h.events) != 2 || string(h.events[0].Kv.Key) != "c" || string(h.events[1].Kv.Key) != "a" {
		t.Fatalf("history of the txn: %v", h)
	}
}

func TestTxnRefusalsWriteNothing(t *testing.T) {
	s := New(Options{})
	put(t, s, "a", "1")
	many := make([]*pb.RequestOp, MaxTxnOps+1)
	for i := range many {
		many[i] = opGet("a", 0)
	}
	for _, tc := range []struct {
		name string
		req  *pb.TxnRequest
		want error
	}{
		{"too many ops", &pb.TxnRequest{Success: many}, ErrTooManyOps},
		{"nested too many ops", &pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{Failure: many[:MaxTxnOps]})}}, ErrTooManyOps},
		{"unknown lease after a put", &pb.TxnRequest{Success: []*pb.RequestOp{opPut("x", "1", 0), opPut("y", "1", 42)}}, ErrLeaseNotFound},
		{"unknown lease in nested", &pb.TxnRequest{Success: []*pb.RequestOp{opPut("x", "1", 0), opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("y", "", 42)}})}}, ErrLeaseNotFound},
		{"duplicate put", &pb.TxnRequest{Success: []*pb.RequestOp{opPut("x", "1", 0), opPut("x", "2", 0)}}, ErrDuplicateKey},
		{"put in deleted range", &pb.TxnRequest{Failure: []*pb.RequestOp{opDel("a", "z"), opPut("x", "2", 0)}}, ErrDuplicateKey},
		{"put again in nested", &pb.TxnRequest{Success: []*pb.RequestOp{opPut("x", "1", 0), opTxn(&pb.TxnRequest{Failure: []*pb.RequestOp{opPut("x", "", 0)}})}}, ErrDuplicateKey},
		{"empty compare key", &pb.TxnRequest{Compare: []*pb.Compare{{}}}, ErrEmptyKey},
		{"future read", &pb.TxnRequest{Success: []*pb.RequestOp{opPut("x", "1", 0), opGet("a", 9)}}, ErrFutureRev},
	} {
		_, err := s.Txn(tc.req)
		if err != tc.want {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
	}
	if s.Rev() != 2 || len(get(t, s, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}).Kvs) != 1 {
		t.Fatalf("refused txns changed the store: rev %d", s.Rev())
	}
	// Both branches of one nested txn may write the same key; the branch not taken is not checked.
	ok := &pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{
		Compare: []*pb.Compare{cmpCreate("a", 0)},
		Success: []*pb.RequestOp{opPut("x", "1", 42)},
		Failure: []*pb.RequestOp{opPut("x", "2", 0)},
	})}}
	if r, err := s.Txn(ok); err != nil || r.Responses[0].GetResponseTxn().Succeeded {
		t.Fatalf("nested branches writing one key: %v, %v", r, err)
	}
}
