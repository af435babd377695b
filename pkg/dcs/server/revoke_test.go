package server

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/dcs/mvcc"
)

func TestRevokeVerdict(t *testing.T) {
	ff := dcs.FastFailover{LeaderKey: "/service/c/leader", Node: "pg1", Detect: 5 * time.Second, LoopWait: time.Second}
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	for _, tc := range []struct {
		name                 string
		now, seen, refreshed time.Time
		want                 bool
	}{
		{"host silent and lease stale", at(10), at(4.9), at(3.9), true},
		{"exactly at both thresholds", at(10), at(5), at(4), true},
		{"host answers", at(10), at(9.8), at(0), false},
		{"host silent just under detect", at(10), at(5.1), at(0), false},
		{"lease refreshed through another member", at(10), at(0), at(4.5), false},
		{"not leading (no contact time)", at(10), time.Time{}, at(0), false},
		{"unknown lease", at(10), at(0), time.Time{}, false},
	} {
		got, why := revokeVerdict(tc.now, tc.seen, tc.refreshed, ff)
		if got != tc.want || (got && why == "") {
			t.Errorf("%s: revoke %v (%q), want %v", tc.name, got, why, tc.want)
		}
	}
}

func TestContactsCountFromElection(t *testing.T) {
	c := newContacts()
	t0 := time.Unix(1000, 0)
	if !c.lastSeen("m1").IsZero() {
		t.Fatal("a follower reports contact times")
	}
	c.done("m1", t0, true) // an answer while not leading counts for nothing
	c.lead(t0.Add(10*time.Second), 2)
	if got := c.lastSeen("m1"); !got.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("a new leader counts m1 as seen at %v, want its election", got)
	}
	if !c.start("m1") || c.start("m1") {
		t.Fatal("a second question went out while one was in flight")
	}
	c.done("m1", t0.Add(11*time.Second), true)
	c.done("m2", t0.Add(12*time.Second), false)
	c.lead(t0.Add(20*time.Second), 2) // still leading: no reset
	if got := c.lastSeen("m1"); !got.Equal(t0.Add(11 * time.Second)) {
		t.Fatalf("m1 last seen %v, want its answer", got)
	}
	if got := c.lastSeen("m2"); !got.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("m2, which did not answer, last seen %v, want the election", got)
	}
	c.follow()
	c.lead(t0.Add(30*time.Second), 3)
	if got := c.lastSeen("m1"); !got.Equal(t0.Add(30 * time.Second)) {
		t.Fatalf("after a new election m1 last seen %v, want the election", got)
	}
	c.done("m1", t0.Add(31*time.Second), true)
	c.lead(t0.Add(32*time.Second), 4) // lost and won again between two ticks
	if got := c.lastSeen("m1"); !got.Equal(t0.Add(32 * time.Second)) {
		t.Fatalf("after a new term m1 last seen %v, want the new election", got)
	}
}

// hostAwareCluster starts three members; m2 declares that Patroni member
// pg2 runs beside it. It returns the cluster and a client on m0 and m1.
func hostAwareCluster(t *testing.T) (*testCluster, *clientv3.Client, dcs.FastFailover) {
	ff := dcs.FastFailover{LeaderKey: "/service/c/leader", Node: "pg2", Detect: 2 * time.Second, LoopWait: time.Second}
	c := newCluster(t, 3, func(cfg *dcs.Config) {
		if cfg.Name == "m2" {
			cfg.FastFailover = ff
		}
	})
	waitFor(t, 10*time.Second, "m2's declaration in the member table", func() bool {
		m, ok := c.servers[c.leader()].node.fsm.member("m2")
		return ok && m.FastFailover == ff
	})
	return c, c.client(c.servers[0].ClientURL(), c.servers[1].ClientURL()), ff
}

func TestStrictIn(t *testing.T) {
	for cfg, want := range map[string]bool{
		`{"synchronous_mode":true,"synchronous_mode_strict":true,"ttl":10}`: true,
		`{"synchronous_mode":"on","synchronous_mode_strict":"true"}`:        true,
		`{"synchronous_mode":true,"synchronous_mode_strict":false}`:         false,
		`{"synchronous_mode":true}`:                                         false,
		`{"synchronous_mode_strict":true}`:                                  false,
		`not json`:                                                          false,
		`{"synchronous_mode":1,"synchronous_mode_strict":1}`:                false,
	} {
		if got := strictIn([]byte(cfg)); got != want {
			t.Errorf("%s: strict %v, want %v", cfg, got, want)
		}
	}
}

// strictConfig writes Patroni's configuration key beside ff's leader key.
func strictConfig(t *testing.T, cl *clientv3.Client, strict bool) {
	v := `{"synchronous_mode":true,"synchronous_mode_strict":false}`
	if strict {
		v = `{"synchronous_mode":true,"synchronous_mode_strict":true}`
	}
	if _, err := cl.Put(ctxT(t, 5*time.Second), "/service/c/config", v); err != nil {
		t.Fatal(err)
	}
}

// holdKey puts the leader key for pg2 under a fresh 30 s lease.
func holdKey(t *testing.T, cl *clientv3.Client, ff dcs.FastFailover) clientv3.LeaseID {
	g, err := cl.Grant(ctxT(t, 5*time.Second), 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Put(ctxT(t, 5*time.Second), ff.LeaderKey, ff.Node, clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	return g.ID
}

func keyPresent(t *testing.T, cl *clientv3.Client, key string) bool {
	r, err := cl.Get(ctxT(t, 5*time.Second), key)
	if err != nil {
		return true // unknown: not yet gone
	}
	return len(r.Kvs) == 1
}

func totalRevocations(c *testCluster) uint64 {
	var n uint64
	for _, s := range c.servers {
		if s != nil {
			n += s.node.revoked.n.Load()
		}
	}
	return n
}

// The member beside the holder stops and the holder's lease goes stale:
// the key goes after about detect + loop_wait, far inside its 30 s TTL.
func TestHostAwareRevocation(t *testing.T) {
	c, cl, ff := hostAwareCluster(t)
	strictConfig(t, cl, true)
	holdKey(t, cl, ff)
	start := time.Now()
	c.stop(2)
	waitFor(t, 15*time.Second, "the leader key's revocation", func() bool { return !keyPresent(t, cl, ff.LeaderKey) })
	took := time.Since(start)
	if took < ff.Detect {
		t.Fatalf("the key went %s after its host, before detect %s", took, ff.Detect)
	}
	if n := totalRevocations(c); n != 1 {
		t.Fatalf("members count %d host-aware revocations, want 1", n)
	}
	t.Logf("revoked %s after the member stopped (detect %s, loop_wait %s, TTL 30s)", took.Round(time.Millisecond), ff.Detect, ff.LoopWait)
}

// Either condition alone revokes nothing: a live host whose Patroni does
// not refresh, and a dead DCS member whose Patroni refreshes through
// another member. Nor do both once the cluster no longer runs strict
// synchronous mode.
func TestNoHostAwareRevocationOnOneCondition(t *testing.T) {
	c, cl, ff := hostAwareCluster(t)
	strictConfig(t, cl, true)
	holdKey(t, cl, ff)
	watchFor := 2 * (ff.Detect + ff.LoopWait)
	for end := time.Now().Add(watchFor); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if !keyPresent(t, cl, ff.LeaderKey) {
			t.Fatal("the key was revoked while the member beside its holder answers")
		}
	}
	id := holdKey(t, cl, ff)
	c.stop(2)
	for end := time.Now().Add(watchFor); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if _, err := cl.KeepAliveOnce(ctxT(t, 5*time.Second), id); err != nil {
			t.Fatalf("keepalive: %v", err)
		}
		if !keyPresent(t, cl, ff.LeaderKey) {
			t.Fatal("the key was revoked while its lease is refreshed through another member")
		}
	}
	strictConfig(t, cl, false)
	holdKey(t, cl, ff)
	for end := time.Now().Add(watchFor); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if !keyPresent(t, cl, ff.LeaderKey) {
			t.Fatal("the key was revoked while the cluster runs synchronous_mode_strict: false")
		}
	}
	if n := totalRevocations(c); n != 0 {
		t.Fatalf("members count %d host-aware revocations, want 0", n)
	}
}

// TestDeclaredLeaderKeyKeepsItsHolder: once the cluster runs at
// versionHeldLeader, a plain put that would give a declared leader key to
// another holder while its holder's lease lives is refused, as Patroni's
// JSON client reads it: not a 503 (which it would retry), the key
// unchanged. Patroni's own way to take the key, a compare on
// create_revision 0, works once the key is gone.
func TestDeclaredLeaderKeyKeepsItsHolder(t *testing.T) {
	c, cl, ff := hostAwareCluster(t)
	for _, s := range c.servers {
		waitFor(t, 10*time.Second, s.Name()+" at cluster version "+fmt.Sprint(versionHeldLeader), func() bool { return s.node.fsm.allows(versionHeldLeader) })
	}
	id := holdKey(t, cl, ff)
	g, err := cl.Grant(ctxT(t, 5*time.Second), 30)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Put(ctxT(t, 5*time.Second), ff.LeaderKey, "pg1", clientv3.WithLease(g.ID))
	if status.Code(err) != codes.Aborted {
		t.Fatalf("a plain put taking a held leader key: %v", err)
	}
	key := base64.StdEncoding.EncodeToString([]byte(ff.LeaderKey))
	code, body := gatewayPost(t, c.servers[1], "/v3/kv/put", `{"key":"`+key+`","value":"`+base64.StdEncoding.EncodeToString([]byte("pg1"))+`","lease":"`+fmt.Sprint(int64(g.ID))+`"}`)
	if code != http.StatusConflict || !strings.Contains(body, `"code":10`) || !strings.Contains(body, "only its holder may change it") {
		t.Fatalf("the gateway's answer to that put: %d %s", code, body)
	}
	r, err := cl.Get(ctxT(t, 5*time.Second), ff.LeaderKey)
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != ff.Node || r.Kvs[0].Lease != int64(id) {
		t.Fatalf("the leader key after refused puts: %v %v", r, err)
	}
	// Its holder rewrites it; it is revoked; another holder takes it as
	// Patroni does.
	if _, err := cl.Put(ctxT(t, 5*time.Second), ff.LeaderKey, ff.Node, clientv3.WithLease(g.ID)); err != nil {
		t.Fatalf("the holder rewriting its key: %v", err)
	}
	if _, err := cl.Revoke(ctxT(t, 5*time.Second), g.ID); err != nil {
		t.Fatal(err)
	}
	g2, err := cl.Grant(ctxT(t, 5*time.Second), 30)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cl.Txn(ctxT(t, 5*time.Second)).If(clientv3.Compare(clientv3.CreateRevision(ff.LeaderKey), "=", 0)).
		Then(clientv3.OpPut(ff.LeaderKey, "pg1", clientv3.WithLease(g2.ID))).Commit()
	if err != nil || !tr.Succeeded {
		t.Fatalf("taking the key once it is gone: %v %v", tr, err)
	}
}

// TestHeldLeaderFromItsClusterVersion: below versionHeldLeader every
// member applies a put to a declared leader key as etcd does, so that
// members of two versions never diverge; from it on, all refuse it. A
// declaration that arms no host-aware revocation (what pgherd writes
// without fast_failover) holds the key too.
func TestHeldLeaderFromItsClusterVersion(t *testing.T) {
	ff := dcs.FastFailover{LeaderKey: "/service/c/leader", Node: "pg2"}
	f := newFSM(100)
	member, _ := encodeJSON(opMemberSet, dcs.Member{Name: "m2", Role: dcs.RoleData, FastFailover: ff})
	apply := func(cmd []byte) error {
		r := f.Apply(&raft.Log{Type: raft.LogCommand, Data: cmd})
		return r.(*applyResult).err
	}
	put := func(v string) error {
		cmd, _ := encodeMsg(opPut, &pb.PutRequest{Key: []byte(ff.LeaderKey), Value: []byte(v), Lease: 7})
		return apply(cmd)
	}
	grant, _ := encodeMsg(opLeaseGrant, &pb.LeaseGrantRequest{ID: 7, TTL: 30})
	for _, cmd := range [][]byte{encodeInts(opClusterVersion, versionLimits), member, grant} {
		if err := apply(cmd); err != nil {
			t.Fatal(err)
		}
	}
	if err := put("pg2"); err != nil {
		t.Fatal(err)
	}
	if err := put("pg1"); err != nil {
		t.Fatalf("at cluster version %d: %v", versionLimits, err)
	}
	if err := apply(encodeInts(opClusterVersion, versionHeldLeader)); err != nil {
		t.Fatal(err)
	}
	if err := put("pg2"); err != mvcc.ErrHeld {
		t.Fatalf("at cluster version %d: %v", versionHeldLeader, err)
	}
}
