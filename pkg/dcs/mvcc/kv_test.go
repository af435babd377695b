package mvcc

import (
	"errors"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Helpers shared by the tests of this package.

func put(t *testing.T, s *Store, key, value string) *pb.PutResponse {
	t.Helper()
	resp, err := s.Put(&pb.PutRequest{Key: []byte(key), Value: []byte(value)})
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	return resp
}

func get(t *testing.T, s *Store, req *pb.RangeRequest) *pb.RangeResponse {
	t.Helper()
	resp, err := s.Range(req)
	if err != nil {
		t.Fatalf("range %q..%q: %v", req.Key, req.RangeEnd, err)
	}
	return resp
}

func mustGrant(t *testing.T, s *Store, id, ttl int64) {
	t.Helper()
	if _, err := s.LeaseGrant(&pb.LeaseGrantRequest{ID: id, TTL: ttl}); err != nil {
		t.Fatalf("grant %d: %v", id, err)
	}
}

// keysOf renders kvs as "key=value@create/mod/version" for compact comparisons.
func keysOf(kvs []*mvccpb.KeyValue) string {
	out := ""
	for _, kv := range kvs {
		out += fmt.Sprintf("%s=%s@%d/%d/%d ", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version)
	}
	return out
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

func TestRevisionsAndVersions(t *testing.T) {
	s := New(Options{})
	if s.Rev() != 1 {
		t.Fatalf("empty store at revision %d, want 1", s.Rev())
	}
	if r := put(t, s, "a", "1"); r.Header.Revision != 2 {
		t.Fatalf("first put header revision %d, want 2", r.Header.Revision)
	}
	put(t, s, "a", "2")
	put(t, s, "b", "x")
	got := keysOf(get(t, s, &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c")}).Kvs)
	if want := "a=2@2/3/2 b=x@4/4/1 "; got != want {
		t.Fatalf("range = %q, want %q", got, want)
	}

	// A read does not bump the revision; a delete bumps it once; a delete of nothing does not.
	get(t, s, &pb.RangeRequest{Key: []byte("a")})
	del, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("c"), PrevKv: true})
	if err != nil || del.Deleted != 2 || del.Header.Revision != 5 || keysOf(del.PrevKvs) != "a=2@2/3/2 b=x@4/4/1 " {
		t.Fatalf("delete = %v, %v", del, err)
	}
	del, err = s.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("a")})
	if err != nil || del.Deleted != 0 || del.Header.Revision != 5 || s.Rev() != 5 {
		t.Fatalf("no-op delete = %v, %v, rev %d", del, err, s.Rev())
	}

	// After a delete the key starts again: new create revision, version 1.
	put(t, s, "a", "3")
	if got := keysOf(get(t, s, &pb.RangeRequest{Key: []byte("a")}).Kvs); got != "a=3@6/6/1 " {
		t.Fatalf("recreated key = %q", got)
	}
}

func TestPutOptions(t *testing.T) {
	s := New(Options{})
	mustGrant(t, s, 7, 30)
	if _, err := s.Put(&pb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: 7}); err != nil {
		t.Fatal(err)
	}
	// ignore_value keeps the value, ignore_lease keeps the lease; prev_kv returns the old kv.
	r, err := s.Put(&pb.PutRequest{Key: []byte("k"), IgnoreValue: true, IgnoreLease: true, PrevKv: true})
	if err != nil || keysOf([]*mvccpb.KeyValue{r.PrevKv}) != "k=v@2/2/1 " {
		t.Fatalf("put = %v, %v", r, err)
	}
	kv := get(t, s, &pb.RangeRequest{Key: []byte("k")}).Kvs[0]
	if string(kv.Value) != "v" || kv.Lease != 7 || kv.Version != 2 {
		t.Fatalf("after ignore put: %v", kv)
	}
	// A plain put detaches the key from its lease.
	put(t, s, "k", "w")
	if kv := get(t, s, &pb.RangeRequest{Key: []byte("k")}).Kvs[0]; kv.Lease != 0 {
		t.Fatalf("plain put kept lease %d", kv.Lease)
	}

	rev := s.Rev()
	for _, tc := range []struct {
		req  *pb.PutRequest
		want error
	}{
		{&pb.PutRequest{Value: []byte("v")}, ErrEmptyKey},
		{&pb.PutRequest{Key: []byte("k"), Lease: 99}, ErrLeaseNotFound},
		{&pb.PutRequest{Key: []byte("nope"), IgnoreValue: true}, ErrKeyNotFound},
		{&pb.PutRequest{Key: []byte("nope"), IgnoreLease: true}, ErrKeyNotFound},
		{&pb.PutRequest{Key: []byte("k"), IgnoreValue: true, Value: []byte("x")}, ErrValueProvided},
		{&pb.PutRequest{Key: []byte("k"), IgnoreLease: true, Lease: 7}, ErrLeaseProvided},
	} {
		_, err := s.Put(tc.req)
		wantErr(t, err, tc.want)
	}
	if s.Rev() != rev {
		t.Fatalf("refused puts moved the revision from %d to %d", rev, s.Rev())
	}
	_, err = s.Put(&pb.PutRequest{Key: []byte("k"), Lease: 99})
	if got := err.Error(); got != "rpc error: code = NotFound desc = etcdserver: requested lease not found" {
		t.Fatalf("lease not found error text %q", got)
	}
}

func TestRangeOptions(t *testing.T) {
	s := New(Options{})
	for _, k := range []string{"b", "a", "c", "d"} {
		put(t, s, k, "v"+k) // a@3 b@2 c@4 d@5
	}
	all := []byte{0}
	for _, tc := range []struct {
		name string
		req  *pb.RangeRequest
		want string
	}{
		{"all keys", &pb.RangeRequest{Key: all, RangeEnd: all}, "a b c d"},
		{"from key", &pb.RangeRequest{Key: []byte("b"), RangeEnd: all}, "b c d"},
		{"span", &pb.RangeRequest{Key: []byte("b"), RangeEnd: []byte("d")}, "b c"},
		{"end before key", &pb.RangeRequest{Key: []byte("c"), RangeEnd: []byte("a")}, ""},
		{"missing key", &pb.RangeRequest{Key: []byte("zz")}, ""},
		{"limit", &pb.RangeRequest{Key: all, RangeEnd: all, Limit: 2}, "a b more"},
		{"sort mod descend", &pb.RangeRequest{Key: all, RangeEnd: all, SortTarget: pb.RangeRequest_MOD, SortOrder: pb.RangeRequest_DESCEND, Limit: 3}, "d c a more"},
		{"sort create default ascend", &pb.RangeRequest{Key: all, RangeEnd: all, SortTarget: pb.RangeRequest_CREATE}, "b a c d"},
		{"min mod", &pb.RangeRequest{Key: all, RangeEnd: all, MinModRevision: 4}, "c d"},
		{"max create", &pb.RangeRequest{Key: all, RangeEnd: all, MaxCreateRevision: 3}, "a b"},
	} {
		r := get(t, s, tc.req)
		got := ""
		for _, kv := range r.Kvs {
			got += " " + string(kv.Key)
		}
		if r.More {
			got += " more"
		}
		if len(got) > 0 {
			got = got[1:]
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}

	r := get(t, s, &pb.RangeRequest{Key: all, RangeEnd: all, CountOnly: true})
	if r.Count != 4 || len(r.Kvs) != 0 {
		t.Fatalf("count_only = %v", r)
	}
	r = get(t, s, &pb.RangeRequest{Key: all, RangeEnd: all, KeysOnly: true, Limit: 1})
	if r.Count != 4 || len(r.Kvs) != 1 || r.Kvs[0].Value != nil {
		t.Fatalf("keys_only = %v", r)
	}
	if string(get(t, s, &pb.RangeRequest{Key: []byte("a")}).Kvs[0].Value) != "va" {
		t.Fatal("keys_only changed the stored value")
	}
	_, err := s.Range(&pb.RangeRequest{})
	wantErr(t, err, ErrEmptyKey)
}

func TestHistoricRange(t *testing.T) {
	s := New(Options{HistoryLimit: 4})
	put(t, s, "a", "1")                                                                // 2
	put(t, s, "b", "1")                                                                // 3
	put(t, s, "a", "2")                                                                // 4
	if _, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("b")}); err != nil { // 5
		t.Fatal(err)
	}
	span := &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z")}
	for rev, want := range map[int64]string{
		1: "",
		2: "a=1@2/2/1 ",
		3: "a=1@2/2/1 b=1@3/3/1 ",
		4: "a=2@2/4/2 b=1@3/3/1 ",
		5: "a=2@2/4/2 ",
	} {
		span.Revision = rev
		r := get(t, s, span)
		if got := keysOf(r.Kvs); got != want || r.Header.Revision != 5 {
			t.Errorf("at %d: %q (header %d), want %q", rev, got, r.Header.Revision, want)
		}
	}
	span.Revision = 6
	_, err := s.Range(span)
	wantErr(t, err, ErrFutureRev)

	// The history keeps 4 revisions: the 6th write compacts revision 2.
	put(t, s, "c", "1") // 6
	if s.CompactRev() != 2 {
		t.Fatalf("compact rev %d, want 2", s.CompactRev())
	}
	span.Revision = 1
	_, err = s.Range(span)
	wantErr(t, err, ErrCompacted)
	span.Revision = 2
	if got := keysOf(get(t, s, span).Kvs); got != "a=1@2/2/1 " {
		t.Fatalf("at compact rev: %q", got)
	}

	wantErr(t, s.Compact(2), ErrCompacted)
	wantErr(t, s.Compact(7), ErrFutureRev)
	if err := s.Compact(5); err != nil {
		t.Fatal(err)
	}
	span.Revision = 4
	_, err = s.Range(span)
	wantErr(t, err, ErrCompacted)
	if s.CompactRev() != 5 {
		t.Fatalf("compact rev %d, want 5", s.CompactRev())
	}
}
