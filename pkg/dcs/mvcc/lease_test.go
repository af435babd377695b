package mvcc

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// clock is a settable monotonic clock for lease tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestLeaseRevokeDeletesKeysInOneRevision(t *testing.T) {
	s := New(Options{})
	mustGrant(t, s, 10, 20)
	mustGrant(t, s, 11, 20)
	for _, k := range []string{"/s/members/n1", "/s/leader"} {
		if _, err := s.Put(&pb.PutRequest{Key: []byte(k), Value: []byte("n1"), Lease: 10}); err != nil {
			t.Fatal(err)
		}
	}
	// A key moved to another lease must survive the old lease's end.
	if _, err := s.Put(&pb.PutRequest{Key: []byte("/s/moved"), Lease: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(&pb.PutRequest{Key: []byte("/s/moved"), Value: []byte("x"), Lease: 11}); err != nil {
		t.Fatal(err)
	}
	put(t, s, "/s/config", "{}") // 6
	w := watch(t, s, &pb.WatchCreateRequest{Key: []byte("/s/"), RangeEnd: []byte("/s0")})

	r, err := s.LeaseRevoke(10)
	if err != nil || r.Header.Revision != 7 || s.Rev() != 7 {
		t.Fatalf("revoke = %v, %v (rev %d)", r, err, s.Rev())
	}
	if got := recv(t, w); got != "DELETE /s/leader=@7, DELETE /s/members/n1=@7" {
		t.Fatalf("revoke events: %q", got)
	}
	left := get(t, s, &pb.RangeRequest{Key: []byte("/s/"), RangeEnd: []byte("/s0")})
	if got := keysOf(left.Kvs); got != "/s/config={}@6/6/1 /s/moved=x@4/5/2 " {
		t.Fatalf("after revoke: %q", got)
	}
	_, err = s.LeaseRevoke(10)
	wantErr(t, err, ErrLeaseNotFound)
	_, err = s.Put(&pb.PutRequest{Key: []byte("/s/leader"), Lease: 10})
	wantErr(t, err, ErrLeaseNotFound)

	// A lease without keys ends without a new revision.
	if _, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("/s/moved")}); err != nil { // 8
		t.Fatal(err)
	}
	if _, err := s.LeaseRevoke(11); err != nil || s.Rev() != 8 {
		t.Fatalf("revoke of an empty lease: %v, rev %d", err, s.Rev())
	}
	if n := len(s.Leases().Leases); n != 0 {
		t.Fatalf("%d leases left", n)
	}
}

func TestLeaseDeadlines(t *testing.T) {
	c := newClock()
	s := New(Options{Now: c.Now})
	wantErr(t, func() error { _, err := s.LeaseGrant(&pb.LeaseGrantRequest{TTL: 20}); return err }(), ErrLeaseIDZero)
	wantErr(t, func() error { _, err := s.LeaseGrant(&pb.LeaseGrantRequest{ID: 1, TTL: MaxLeaseTTL + 1}); return err }(), ErrLeaseTTLTooLarge)
	g, err := s.LeaseGrant(&pb.LeaseGrantRequest{ID: 1, TTL: 20})
	if err != nil || g.ID != 1 || g.TTL != 20 {
		t.Fatalf("grant = %v, %v", g, err)
	}
	mustGrant(t, s, 2, 30)
	_, err = s.LeaseGrant(&pb.LeaseGrantRequest{ID: 2, TTL: 5})
	wantErr(t, err, ErrLeaseExists)
	if _, err := s.Put(&pb.PutRequest{Key: []byte("k"), Lease: 1}); err != nil {
		t.Fatal(err)
	}

	c.advance(15 * time.Second)
	ttl, _ := s.LeaseTimeToLive(&pb.LeaseTimeToLiveRequest{ID: 1, Keys: true})
	if ttl.TTL != 5 || ttl.GrantedTTL != 20 || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "k" {
		t.Fatalf("timetolive = %v", ttl)
	}
	// A keepalive applied now moves the deadline to now + TTL on this member's clock.
	k, err := s.LeaseRefresh(1, 20)
	if err != nil || k.ID != 1 || k.TTL != 20 {
		t.Fatalf("refresh = %v, %v", k, err)
	}
	c.advance(19 * time.Second)
	if got := s.Expired(c.Now()); !slices.Equal(got, []int64{2}) {
		t.Fatalf("expired at +34s: %v, want [2]", got)
	}
	c.advance(time.Second)
	if got := s.Expired(c.Now()); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("expired at +35s: %v, want [1 2]", got)
	}
	// Expiry is only reported: the lease and its key stay until a revoke is applied.
	if len(get(t, s, &pb.RangeRequest{Key: []byte("k")}).Kvs) != 1 || len(s.Leases().Leases) != 2 {
		t.Fatal("Expired removed something")
	}
	// The earliest deadline is lease 2's: granted at the start with TTL 30, 5 s ago.
	if next, ok := s.NextDeadline(); !ok || !next.Equal(c.Now().Add(-5*time.Second)) {
		t.Fatalf("next deadline = %v, %v; want %v", next, ok, c.Now().Add(-5*time.Second))
	}
	// ttl 0 refreshes with the granted TTL.
	if _, err := s.LeaseRefresh(2, 0); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := s.LeaseTimeToLive(&pb.LeaseTimeToLiveRequest{ID: 2}); ttl.TTL != 30 {
		t.Fatalf("refresh with ttl 0 left %d s", ttl.TTL)
	}
	_, err = s.LeaseRefresh(3, 20)
	wantErr(t, err, ErrLeaseNotFound)
	if ttl, err := s.LeaseTimeToLive(&pb.LeaseTimeToLiveRequest{ID: 3}); err != nil || ttl.TTL != -1 || ttl.ID != 3 {
		t.Fatalf("timetolive of unknown lease = %v, %v", ttl, err)
	}
}

// TestNewLeaderExpiresJustAfterOldOne models two members applying the same keepalive entry 3 ms apart
// on one time line: the later one's deadline is never earlier and only that much later.
func TestNewLeaderExpiresJustAfterOldOne(t *testing.T) {
	c := newClock()
	leader, follower := New(Options{Now: c.Now}), New(Options{Now: c.Now})
	for _, s := range []*Store{leader, follower} {
		mustGrant(t, s, 1, 20)
	}
	c.advance(10 * time.Second)
	if _, err := leader.LeaseRefresh(1, 20); err != nil {
		t.Fatal(err)
	}
	c.advance(3 * time.Millisecond)
	if _, err := follower.LeaseRefresh(1, 20); err != nil {
		t.Fatal(err)
	}
	// The holder dies. The leader would expire the lease 20 s after its apply; the follower, if it
	// becomes leader, 3 ms later.
	c.advance(20*time.Second - 3*time.Millisecond)
	if got := leader.Expired(c.Now()); len(got) != 1 {
		t.Fatalf("leader: %v", got)
	}
	if got := follower.Expired(c.Now()); len(got) != 0 {
		t.Fatalf("follower expired it early: %v", got)
	}
	c.advance(3 * time.Millisecond)
	if got := follower.Expired(c.Now()); len(got) != 1 {
		t.Fatalf("follower did not expire it 3 ms later: %v", got)
	}
}

func TestLeaseListing(t *testing.T) {
	s := New(Options{})
	for _, id := range []int64{30, -4, 7} {
		mustGrant(t, s, id, 60)
	}
	got := ""
	for _, l := range s.Leases().Leases {
		got += fmt.Sprint(l.ID, " ")
	}
	if got != "-4 7 30 " {
		t.Fatalf("leases %q", got)
	}
}

// TestHeldKeyKeepsItsHolder: a held key attached to a live lease is not
// rewritten with another value, by a put or inside a txn, and nothing
// changes; its holder may rewrite it (another lease, the same value), a
// delete takes it, and once its lease ends anyone may put it. Keys that
// are not held, or held without a lease, behave as in etcd.
func TestHeldKeyKeepsItsHolder(t *testing.T) {
	s := New(Options{Held: func(k []byte) bool { return string(k) == "/s/leader" }})
	mustGrant(t, s, 10, 20)
	mustGrant(t, s, 11, 20)
	leader := func(v string, lease int64) *pb.PutRequest {
		return &pb.PutRequest{Key: []byte("/s/leader"), Value: []byte(v), Lease: lease}
	}
	if _, err := s.Put(leader("n2", 10)); err != nil {
		t.Fatal(err)
	}
	rev := s.Rev()
	if _, err := s.Put(leader("n1", 11)); err != ErrHeld {
		t.Fatalf("a put changing the holder of a held key: %v", err)
	}
	txn := &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: leader("n1", 0)}}}}
	if _, err := s.Txn(txn); err != ErrHeld {
		t.Fatalf("a txn changing the holder of a held key: %v", err)
	}
	if got := keysOf(get(t, s, &pb.RangeRequest{Key: []byte("/s/leader")}).Kvs); got != "/s/leader=n2@2/2/1 " || s.Rev() != rev {
		t.Fatalf("after refused puts: %q at revision %d, want revision %d", got, s.Rev(), rev)
	}
	// Its holder moves it to another lease.
	if _, err := s.Put(leader("n2", 11)); err != nil {
		t.Fatalf("the holder rewriting its key: %v", err)
	}
	// Not held, or without a lease: etcd's rules.
	put(t, s, "/s/other", "n2")
	put(t, s, "/s/other", "n1")
	if _, err := s.Put(leader("n2", 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(leader("n1", 10)); err != nil {
		t.Fatalf("a held key without a lease: %v", err)
	}
	// Its lease ends: the key goes with it, and another holder takes it.
	if _, err := s.LeaseRevoke(10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(leader("n2", 11)); err != nil {
		t.Fatal(err)
	}
	// A delete is never refused.
	if r, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("/s/leader")}); err != nil || r.Deleted != 1 {
		t.Fatalf("deleting a held key: %v, %v", r, err)
	}
	if _, err := s.Put(leader("n1", 11)); err != nil {
		t.Fatal(err)
	}
}
