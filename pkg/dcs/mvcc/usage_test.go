package mvcc

import (
	"bytes"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestHistoryBoundedByBytes is the memory growth: 40 puts of 1 MB to one key kept all 40
// values in the history (40 MB), because only the revision count was bounded. Now the history keeps
// at most DefaultHistoryBytes of accounted values, dropping the oldest revisions first, and a watch
// or read below what it dropped gets etcd's compacted answer.
func TestHistoryBoundedByBytes(t *testing.T) {
	s := New(Options{})
	slow := watch(t, s, &pb.WatchCreateRequest{Key: []byte("big"), StartRevision: 2}) // never receives
	value := bytes.Repeat([]byte("v"), 1<<20)
	for range 40 {
		if _, err := s.Put(&pb.PutRequest{Key: []byte("big"), Value: value}); err != nil {
			t.Fatal(err)
		}
	}
	// One live value, a history of at most DefaultHistoryBytes, and overheads.
	const bound = 1<<20 + DefaultHistoryBytes + 4096
	if u := s.Usage(); u > bound {
		t.Fatalf("usage %d bytes after 40 puts of 1 MB, want at most %d", u, bound)
	}
	if h := s.HistoryBytes(); h > DefaultHistoryBytes || h < 3<<20 {
		t.Fatalf("history %d bytes, want 3 MiB..%d (full up to its budget)", h, DefaultHistoryBytes)
	}
	if s.Rev() != 41 || s.CompactRev() < 30 {
		t.Fatalf("rev %d, compacted %d: want 41 and the oldest values dropped", s.Rev(), s.CompactRev())
	}
	_, err := s.Range(&pb.RangeRequest{Key: []byte("big"), Revision: 2})
	wantErr(t, err, ErrCompacted)
	if r := get(t, s, &pb.RangeRequest{Key: []byte("big"), Revision: s.Rev() - 1}); len(r.Kvs) != 1 {
		t.Fatalf("recent revision %d not readable", s.Rev()-1)
	}
	_, err = s.Watch(&pb.WatchCreateRequest{Key: []byte("big"), StartRevision: 2})
	wantErr(t, err, ErrCompacted)
	for range slow.C() {
	}
	if slow.Err() != ErrCompacted || slow.CompactRev() < 30 {
		t.Fatalf("slow watcher ended with %v at %d, want ErrCompacted past 30", slow.Err(), slow.CompactRev())
	}
}

// TestHistoryKeepsNewestRevision: a single revision larger than the budget (here: overwriting a
// large value) stays until the next one, so a watcher at the head is never cancelled by it.
func TestHistoryKeepsNewestRevision(t *testing.T) {
	s := New(Options{HistoryBytes: 1 << 10})
	if _, err := s.Put(&pb.PutRequest{Key: []byte("a"), Value: bytes.Repeat([]byte("x"), 4<<10)}); err != nil {
		t.Fatal(err)
	}
	w := watch(t, s, &pb.WatchCreateRequest{Key: []byte("a")})
	put(t, s, "a", "small") // revision 3 holds the 4 KiB value as its previous one
	if got := recv(t, w); got == "" {
		t.Fatal("watcher at the head missed the write")
	}
	if s.CompactRev() != 2 || s.HistoryBytes() <= 1<<10 {
		t.Fatalf("compacted %d, history %d: want only revision 3 kept", s.CompactRev(), s.HistoryBytes())
	}
}

// TestUsageCountsEachVersionOnce pins the accounting that the space quota relies on: a value is
// counted while it is live or while the event that replaced it is in the history, once; Compact
// frees what it drops; a restored member computes the same figure.
func TestUsageCountsEachVersionOnce(t *testing.T) {
	s := New(Options{})
	kv := func(k, v string) int64 { return int64(len(k)+len(v)) + kvOverhead }
	want := func(what string, u int64) {
		t.Helper()
		if got := s.Usage(); got != u {
			t.Fatalf("%s: usage %d, want %d", what, got, u)
		}
	}
	want("empty", 0)
	put(t, s, "key", "one")
	want("one put", kv("key", "one")+eventOverhead)
	put(t, s, "key", "three")
	want("overwrite", kv("key", "three")+2*eventOverhead+kv("key", "one"))
	mustGrant(t, s, 7, 60)
	want("lease", kv("key", "three")+2*eventOverhead+kv("key", "one")+leaseOverhead)
	if _, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("key")}); err != nil {
		t.Fatal(err)
	}
	// Deleting frees nothing yet: the value is the DELETE event's previous value.
	deleted := 3*eventOverhead + kv("key", "one") + kv("key", "three") + leaseOverhead
	want("delete", deleted)

	snap := snapshotBytes(t, s)
	r := New(Options{})
	if err := r.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if r.Usage() != deleted {
		t.Fatalf("restored usage %d, want %d", r.Usage(), deleted)
	}
	if err := s.Compact(s.Rev()); err != nil {
		t.Fatal(err)
	}
	want("compacted", leaseOverhead)
}
