package mvcc

import (
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func watch(t *testing.T, s *Store, req *pb.WatchCreateRequest) *Watcher {
	t.Helper()
	w, err := s.Watch(req)
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	t.Cleanup(w.Close)
	return w
}

// recv returns the next batch rendered as "TYPE key=value@mod[<prev]" joined by ", ", failing after a
// deadline.
func recv(t *testing.T, w *Watcher) string {
	t.Helper()
	select {
	case b, ok := <-w.C():
		if !ok {
			t.Fatalf("watcher closed: %v", w.Err())
		}
		return renderEvents(b.Events)
	case <-time.After(5 * time.Second):
		t.Fatal("no events within 5s")
	}
	return ""
}

// recvBatch is recv that also returns the batch's revision (the response header's).
func recvBatch(t *testing.T, w *Watcher) (string, int64) {
	t.Helper()
	select {
	case b, ok := <-w.C():
		if !ok {
			t.Fatalf("watcher closed: %v", w.Err())
		}
		return renderEvents(b.Events), b.Rev
	case <-time.After(5 * time.Second):
		t.Fatal("no events within 5s")
	}
	return "", 0
}

// recvEvents receives batches until it has n events (however the watcher grouped them) and renders them.
func recvEvents(t *testing.T, w *Watcher, n int) string {
	t.Helper()
	var parts []string
	for len(parts) < n {
		got, _ := recvBatch(t, w)
		parts = append(parts, strings.Split(got, ", ")...)
	}
	if len(parts) > n {
		t.Fatalf("%d events, want %d: %v", len(parts), n, parts)
	}
	return strings.Join(parts, ", ")
}

func renderEvents(events []*mvccpb.Event) string {
	var parts []string
	for _, ev := range events {
		p := fmt.Sprintf("%s %s=%s@%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision)
		if ev.PrevKv != nil {
			p += "<" + string(ev.PrevKv.Value)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

func expectNothing(t *testing.T, w *Watcher) {
	t.Helper()
	select {
	case events, ok := <-w.C():
		t.Fatalf("unexpected delivery %v (open %v)", events, ok)
	case <-time.After(20 * time.Millisecond):
	}
}

func TestWatchReplayThenLive(t *testing.T) {
	s := New(Options{})
	put(t, s, "/svc/a", "1") // 2
	put(t, s, "/other", "1") // 3
	rng := get(t, s, &pb.RangeRequest{Key: []byte("/svc/"), RangeEnd: []byte("/svc0")})
	put(t, s, "/svc/b", "1")                                                                // 4
	if _, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("/svc/a")}); err != nil { // 5
		t.Fatal(err)
	}

	// Patroni's pattern: start at the range's header revision, inclusive (3: nothing under the prefix).
	// The replay is one batch headed with the current revision, as etcd sends it.
	w := watch(t, s, &pb.WatchCreateRequest{Key: []byte("/svc/"), RangeEnd: []byte("/svc0"), StartRevision: rng.Header.Revision})
	if got, rev := recvBatch(t, w); got != "PUT /svc/b=1@4, DELETE /svc/a=@5" || rev != 5 {
		t.Fatalf("replay (DELETE kv carries the deletion revision, no prev_kv unless asked): %q at %d", got, rev)
	}
	expectNothing(t, w)
	put(t, s, "/other", "2")
	put(t, s, "/svc/c", "1") // 7
	if got := recv(t, w); got != "PUT /svc/c=1@7" {
		t.Fatalf("live: %q", got)
	}

	// Start 0 means from the next revision; start 2 replays from revision 2 inclusive.
	from0 := watch(t, s, &pb.WatchCreateRequest{Key: []byte("/svc/"), RangeEnd: []byte("/svc0")})
	from2 := watch(t, s, &pb.WatchCreateRequest{Key: []byte("/svc/a"), StartRevision: 2, PrevKv: true})
	if got, rev := recvBatch(t, from2); got != "PUT /svc/a=1@2, DELETE /svc/a=@5<1" || rev != 7 {
		t.Fatalf("from 2 with prev_kv: %q at %d", got, rev)
	}
	expectNothing(t, from0)
	put(t, s, "/svc/a", "2")
	if got := recv(t, from0); got != "PUT /svc/a=2@8" {
		t.Fatalf("from 0: %q", got)
	}
	if got := recv(t, from2); got != "PUT /svc/a=2@8" {
		t.Fatalf("from 2, live: %q", got)
	}
}

func TestWatchFiltersAndTxn(t *testing.T) {
	s := New(Options{})
	noDel := watch(t, s, &pb.WatchCreateRequest{Key: []byte{0}, RangeEnd: []byte{0}, Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}})
	noPut := watch(t, s, &pb.WatchCreateRequest{Key: []byte{0}, RangeEnd: []byte{0}, Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}})
	put(t, s, "a", "1")
	if _, err := s.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", ""), opPut("b", "1", 0), opPut("c", "1", 0)}}); err != nil {
		t.Fatal(err)
	}
	if got := recvEvents(t, noDel, 3); got != "PUT a=1@2, PUT b=1@3, PUT c=1@3" {
		t.Fatalf("nodelete: %q", got)
	}
	if got := recv(t, noPut); got != "DELETE a=@3" {
		t.Fatalf("noput: %q", got)
	}
}

func TestWatchCompaction(t *testing.T) {
	s := New(Options{HistoryLimit: 3})
	for i := range 5 {
		put(t, s, "k", fmt.Sprint(i)) // revisions 2..6; history keeps 4..6
	}
	if s.CompactRev() != 3 {
		t.Fatalf("compact rev %d", s.CompactRev())
	}
	_, err := s.Watch(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 3})
	wantErr(t, err, ErrCompacted)
	w := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 4})
	if got := recv(t, w); got != "PUT k=2@4, PUT k=3@5, PUT k=4@6" {
		t.Fatalf("from the oldest kept revision: %q", got)
	}
	// The watcher is not read while 7 more revisions pass (it may hold one batch read at any time
	// meanwhile): the history moves past it.
	for i := range 7 {
		put(t, s, "k", fmt.Sprint(10+i))
	}
	for range w.C() {
	}
	wantErr(t, w.Err(), ErrCompacted)
	// It reports the compacted revision it found, which depends on when it looked.
	if w.CompactRev() < 7 || w.CompactRev() > s.CompactRev() {
		t.Fatalf("watcher compact rev %d, want 7..%d", w.CompactRev(), s.CompactRev())
	}
	// An explicit Compact cancels a watcher that has not caught up.
	w2 := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k"), StartRevision: s.Rev() - 1})
	put(t, s, "k", "20")
	put(t, s, "k", "21")
	if err := s.Compact(s.Rev()); err != nil {
		t.Fatal(err)
	}
	for range w2.C() {
	}
	wantErr(t, w2.Err(), ErrCompacted)
}

// TestSlowWatcherDoesNotBlockApply applies many writes while a watcher is never read, then checks it
// still delivers everything within the history, and that Close frees it.
func TestSlowWatcherDoesNotBlockApply(t *testing.T) {
	s := New(Options{HistoryLimit: 1000})
	w := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k")})
	done := make(chan struct{})
	go func() {
		for i := range 500 {
			if _, err := s.Put(&pb.PutRequest{Key: []byte("k"), Value: []byte(fmt.Sprint(i))}); err != nil {
				t.Error(err)
			}
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("apply blocked by an unread watcher")
	}
	var want []string
	for i := range 500 {
		want = append(want, fmt.Sprintf("PUT k=%d@%d", i, i+2))
	}
	if got := recvEvents(t, w, 500); got != strings.Join(want, ", ") {
		t.Fatalf("events: %.300q", got)
	}
	w.Close()
	for range w.C() {
	}
	if w.Err() != nil {
		t.Fatalf("closed watcher err %v", w.Err())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.RLock()
		n := len(s.watchers)
		s.mu.RUnlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d watchers still registered after Close", n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWatchProgress(t *testing.T) {
	s := New(Options{})
	w := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k")})
	waitSynced := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if rev, ok := w.Progress(); ok {
				if rev != want {
					t.Fatalf("synced at %d, want %d", rev, want)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("not synced at %d", want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitSynced(1)
	put(t, s, "k", "1")
	// The event at 2 is not received yet: the watcher must not claim to be synced.
	for range 50 {
		if rev, ok := w.Progress(); ok {
			t.Fatalf("synced at %d with an event not received", rev)
		}
		time.Sleep(time.Millisecond)
	}
	recv(t, w)
	waitSynced(2)
	put(t, s, "other", "1") // does not match: the watcher scans past it
	waitSynced(3)
}

// TestWatchPrevKVIsBeforeTheRevision: a txn may write a key twice (a put, then a delete of a range
// ending in "\x00", which etcd's duplicate check lets through); the watch's prev_kv is the value
// before the txn, as etcd's.
func TestWatchPrevKVIsBeforeTheRevision(t *testing.T) {
	s := New(Options{})
	put(t, s, "k", "old")
	w := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k"), PrevKv: true})
	if _, err := s.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("k", "new", 0), opDel("k", "\x00")}}); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, w); got != "PUT k=new@3<old, DELETE k=@3<old" {
		t.Fatalf("events: %q", got)
	}
}
