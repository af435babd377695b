package mvcc

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func snapshotBytes(t *testing.T, s *Store) []byte {
	t.Helper()
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := snap.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("write snapshot: n=%d len=%d err=%v", n, buf.Len(), err)
	}
	return buf.Bytes()
}

func allKeys(t *testing.T, s *Store) string {
	t.Helper()
	r := get(t, s, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	return fmt.Sprintf("rev %d compact %d: ", s.Rev(), s.CompactRev()) + keysOf(r.Kvs)
}

// TestDeterministicReplay applies the same log to two stores, and to a third restored from a
// snapshot taken half way: ranges, leases and snapshots must be identical.
func TestDeterministicReplay(t *testing.T) {
	c := newClock()
	ops := randomOps(42, 3000, true)
	// End with a lease holding a key, so the snapshots compare lease state too.
	ops = append(ops, op{grant: &pb.LeaseGrantRequest{ID: 9, TTL: 30}}, op{put: &pb.PutRequest{Key: []byte("/k/held"), Lease: 9}})
	a, b := New(Options{HistoryLimit: 100, Now: c.Now}), New(Options{HistoryLimit: 100, Now: c.Now})
	c2 := New(Options{HistoryLimit: 100, Now: c.Now})
	for i, op := range ops {
		want := op.apply(a)
		if got := op.apply(b); got != want {
			t.Fatalf("op %d: replica answered %s, want %s", i, got, want)
		}
		if i == len(ops)/2 {
			if err := c2.Restore(bytes.NewReader(snapshotBytes(t, a))); err != nil {
				t.Fatal(err)
			}
		}
		if i > len(ops)/2 {
			if got := op.apply(c2); got != want {
				t.Fatalf("op %d: restored store answered %s, want %s", i, got, want)
			}
		}
	}
	if a.Rev() < 500 || len(a.Leases().Leases) == 0 || a.CompactRev() < a.Rev()-100 {
		t.Fatalf("the op sequence exercises too little: %s, %d leases", allKeys(t, a), len(a.Leases().Leases))
	}
	want, wantSnap := allKeys(t, a), snapshotBytes(t, a)
	for name, s := range map[string]*Store{"replica": b, "restored": c2} {
		if got := allKeys(t, s); got != want {
			t.Errorf("%s range:\n%s\nwant\n%s", name, got, want)
		}
		if !bytes.Equal(snapshotBytes(t, s), wantSnap) {
			t.Errorf("%s snapshot differs", name)
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	c := newClock()
	s := New(Options{Now: c.Now})
	mustGrant(t, s, 9, 20)
	if _, err := s.Put(&pb.PutRequest{Key: []byte("/leader"), Value: []byte("n1"), Lease: 9}); err != nil {
		t.Fatal(err)
	}
	put(t, s, "/config", "{}")
	put(t, s, "/config", `{"ttl":20}`)
	if err := s.Compact(3); err != nil {
		t.Fatal(err)
	}
	c.advance(5 * time.Second) // 15 s left on lease 9
	data := snapshotBytes(t, s)

	later := newClock()
	later.advance(time.Hour)
	r := New(Options{Now: later.Now})
	w := watch(t, r, &pb.WatchCreateRequest{Key: []byte("/"), RangeEnd: []byte("0"), StartRevision: 4})
	if err := r.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if got, want := allKeys(t, r), allKeys(t, s); got != want {
		t.Fatalf("restored %q, want %q", got, want)
	}
	// The history came along: historic reads and the watch that was waiting for revision 4.
	if got := keysOf(get(t, r, &pb.RangeRequest{Key: []byte("/config"), Revision: 3}).Kvs); got != "/config={}@3/3/1 " {
		t.Fatalf("historic read after restore: %q", got)
	}
	if got := recv(t, w); got != `PUT /config={"ttl":20}@4` {
		t.Fatalf("watch across restore: %q", got)
	}
	// Lease deadline: now + remaining, on the restoring member's clock.
	if ttl, _ := r.LeaseTimeToLive(&pb.LeaseTimeToLiveRequest{ID: 9, Keys: true}); ttl.TTL != 15 || ttl.GrantedTTL != 20 || len(ttl.Keys) != 1 {
		t.Fatalf("restored lease %v", ttl)
	}
	later.advance(15*time.Second - time.Millisecond)
	if len(r.Expired(later.Now())) != 0 {
		t.Fatal("restored lease expires early")
	}
	later.advance(time.Millisecond)
	if len(r.Expired(later.Now())) != 1 {
		t.Fatal("restored lease does not expire")
	}
	// Revoking the restored lease deletes its key: the attachment was rebuilt.
	if _, err := r.LeaseRevoke(9); err != nil || len(get(t, r, &pb.RangeRequest{Key: []byte("/leader")}).Kvs) != 0 {
		t.Fatalf("revoke after restore: %v", err)
	}
}

func TestRestoreRefusesBadInput(t *testing.T) {
	s := New(Options{})
	put(t, s, "a", "1")
	good := snapshotBytes(t, s)
	for name, data := range map[string][]byte{
		"empty":       nil,
		"version":     append([]byte{9}, good[1:]...),
		"truncated":   good[:len(good)-3],
		"huge length": {snapshotVersion, 2, 0, 0xfe, 0xff, 0xff, 0xff, 0x0f},
	} {
		if err := s.Restore(bytes.NewReader(data)); err == nil {
			t.Errorf("%s: restored", name)
		}
	}
	if got := allKeys(t, s); got != "rev 2 compact 0: a=1@2/2/1 " {
		t.Fatalf("failed restores changed the store: %q", got)
	}
}

// TestHistoryMatchesPastStates is a property test: after every op of a random log, the state is
// recorded; every revision still in the history must read back exactly as recorded, and a watch from
// the oldest kept revision, replayed on the recorded state there, must rebuild the current state.
func TestHistoryMatchesPastStates(t *testing.T) {
	for seed := range uint64(5) {
		s := New(Options{HistoryLimit: 200})
		states := map[int64]map[string]*mvccpb.KeyValue{1: {}}
		for _, op := range randomOps(seed, 600, true) {
			op.apply(s)
			m := map[string]*mvccpb.KeyValue{}
			for _, kv := range get(t, s, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}).Kvs {
				m[string(kv.Key)] = kv
			}
			states[s.Rev()] = m
		}
		for rev := s.CompactRev(); rev <= s.Rev(); rev++ {
			want, ok := states[rev]
			if !ok {
				continue
			}
			r := get(t, s, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev})
			if len(r.Kvs) != len(want) {
				t.Fatalf("seed %d rev %d: %d keys, want %d", seed, rev, len(r.Kvs), len(want))
			}
			for _, kv := range r.Kvs {
				if w := want[string(kv.Key)]; w == nil || w.String() != kv.String() {
					t.Fatalf("seed %d rev %d: %v, want %v", seed, rev, kv, w)
				}
			}
		}

		start := s.CompactRev() + 1
		state := map[string]*mvccpb.KeyValue{}
		for k, v := range states[start-1] {
			state[k] = v
		}
		w, err := s.Watch(&pb.WatchCreateRequest{Key: []byte{0}, RangeEnd: []byte{0}, StartRevision: start})
		if err != nil {
			t.Fatal(err)
		}
		for last := int64(0); last < s.Rev(); {
			events := (<-w.C()).Events
			for _, ev := range events {
				last = ev.Kv.ModRevision
				if ev.Type == mvccpb.DELETE {
					delete(state, string(ev.Kv.Key))
				} else {
					state[string(ev.Kv.Key)] = ev.Kv
				}
			}
		}
		w.Close()
		if len(state) != len(states[s.Rev()]) {
			t.Fatalf("seed %d: watch rebuilt %d keys, want %d", seed, len(state), len(states[s.Rev()]))
		}
		for k, kv := range states[s.Rev()] {
			if state[k] != kv {
				t.Fatalf("seed %d: watch rebuilt %v for %s, want %v", seed, state[k], k, kv)
			}
		}
	}
}

// TestConcurrentReaders reads, snapshots and watches while a random log is applied; run with -race.
func TestConcurrentReaders(t *testing.T) {
	s := New(Options{HistoryLimit: 50})
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for i := range 3 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			w, err := s.Watch(&pb.WatchCreateRequest{Key: []byte{0}, RangeEnd: []byte{0}})
			if err != nil {
				t.Error(err)
				return
			}
			defer w.Close()
			for {
				select {
				case <-stop:
					return
				case <-w.C():
				default:
				}
				switch i {
				case 0:
					s.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: s.CompactRev()})
				case 1:
					if snap, err := s.Snapshot(); err == nil {
						snap.WriteTo(io.Discard)
					}
				case 2:
					s.Leases()
					s.LeaseTimeToLive(&pb.LeaseTimeToLiveRequest{ID: 1, Keys: true})
					s.Expired(time.Now())
					w.Progress()
				}
			}
		}()
	}
	for _, op := range randomOps(7, 2000, true) {
		op.apply(s)
	}
	close(stop)
	readers.Wait()
}

// FuzzRestore feeds arbitrary bytes to Restore: it must fail cleanly or leave a usable store.
func FuzzRestore(f *testing.F) {
	s := New(Options{})
	for _, op := range randomOps(3, 50, true) {
		op.apply(s)
	}
	snap, _ := s.Snapshot()
	var buf bytes.Buffer
	snap.WriteTo(&buf)
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		r := New(Options{})
		if err := r.Restore(bytes.NewReader(data)); err != nil {
			return
		}
		r.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: r.CompactRev()})
		r.Put(&pb.PutRequest{Key: []byte("k")})
	})
}

// TestRestoreRefusesNewerFormat: a snapshot written in a newer format (by a
// newer pgherd) is refused with what to do, never misread, and the store
// keeps its state.
func TestRestoreRefusesNewerFormat(t *testing.T) {
	s := New(Options{})
	put(t, s, "a", "1")
	newer := append([]byte{snapshotVersion + 1}, snapshotBytes(t, s)[1:]...)
	err := s.Restore(bytes.NewReader(newer))
	if err == nil || !strings.Contains(err.Error(), "newer") || !strings.Contains(err.Error(), "upgrade pgherd") {
		t.Fatalf("want a refusal that says to upgrade, got %v", err)
	}
	if got := allKeys(t, s); got != "rev 2 compact 0: a=1@2/2/1 " {
		t.Fatalf("the refused restore changed the store: %q", got)
	}
}
