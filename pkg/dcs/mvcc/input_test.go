package mvcc

import (
	"bytes"
	"math"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestClientIntegersAtTheirExtremes sends the largest and smallest int64 wherever a client chooses one
// (limits, revisions, TTLs, lease IDs): every call answers, nothing panics, and a huge limit reads
// like no limit, as etcd (whose limit+1 wraps to "no limit").
func TestClientIntegersAtTheirExtremes(t *testing.T) {
	s := New(Options{})
	put(t, s, "a", "1")
	put(t, s, "b", "2")
	for _, limit := range []int64{math.MaxInt64, math.MaxInt64 - 1, math.MinInt64, -1} {
		for _, order := range []pb.RangeRequest_SortOrder{pb.RangeRequest_NONE, pb.RangeRequest_DESCEND} {
			r := get(t, s, &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, Limit: limit, SortOrder: order})
			if len(r.Kvs) != 2 || r.More {
				t.Fatalf("limit %d order %v: %d keys, more %v", limit, order, len(r.Kvs), r.More)
			}
		}
	}
	txn := &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{
		RequestRange: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, Limit: math.MaxInt64}}}}}
	if resp, err := s.Txn(txn); err != nil || len(resp.Responses[0].GetResponseRange().Kvs) != 2 {
		t.Fatalf("txn with limit MaxInt64: %v, %v", resp, err)
	}
	for _, rev := range []int64{math.MaxInt64, math.MinInt64} {
		s.Range(&pb.RangeRequest{Key: []byte("a"), Revision: rev, MinModRevision: rev, MaxCreateRevision: rev})
		s.Compact(rev)
		if w, err := s.Watch(&pb.WatchCreateRequest{Key: []byte("a"), StartRevision: rev}); err == nil {
			w.Close()
		}
	}
	for _, id := range []int64{math.MaxInt64, math.MinInt64} {
		s.LeaseGrant(&pb.LeaseGrantRequest{ID: id, TTL: math.MaxInt64})
		s.LeaseGrant(&pb.LeaseGrantRequest{ID: id, TTL: math.MinInt64})
		s.LeaseRefresh(id, math.MaxInt64)
		s.LeaseRevoke(id)
	}
}

// TestRefreshCannotOutliveTheGrant: a replicated refresh carrying a TTL above the granted one (a
// forged or corrupt entry) renews to the granted TTL, so no refresh makes a lease that never expires.
func TestRefreshCannotOutliveTheGrant(t *testing.T) {
	c := newClock()
	s := New(Options{Now: c.Now})
	mustGrant(t, s, 1, 10)
	for _, ttl := range []int64{MaxLeaseTTL, math.MaxInt64, 11} {
		if _, err := s.LeaseRefresh(1, ttl); err != nil {
			t.Fatal(err)
		}
		if next, _ := s.NextDeadline(); next.After(c.Now().Add(10 * time.Second)) {
			t.Fatalf("refresh with ttl %d set the deadline %s ahead", ttl, next.Sub(c.Now()))
		}
	}
	// A snapshot whose remaining time is absurd restores a bounded deadline, not an overflowed one.
	snap, _ := s.Snapshot()
	var b bytes.Buffer
	snap.WriteTo(&b)
	r := New(Options{Now: c.Now})
	if err := r.Restore(&b); err != nil {
		t.Fatal(err)
	}
	if next, _ := r.NextDeadline(); next.Before(c.Now()) {
		t.Fatal("restored deadline in the past")
	}
}
