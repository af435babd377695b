package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// call makes one raw peer RPC with the given credential.
func call(t *testing.T, addr string, cred dcs.TLSConfig, m dcs.RPCMethod, mem dcs.Member) error {
	t.Helper()
	tc, err := cred.Client()
	if err != nil {
		t.Fatal(err)
	}
	pc := dcs.NewPeerClient(addr, tc)
	defer pc.Close()
	raw, _ := json.Marshal(mem)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pc.Call(ctx, m, raw)
	return err
}

func memberCount(t *testing.T, addr string, cred dcs.TLSConfig) int {
	t.Helper()
	ac, err := dcs.NewAdminClient(addr, cred)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	ms, err := ac.Members(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

// TestJoinNeedsTheClusterCertificate: a newcomer without a certificate,
// with one of another cluster's CA, or with a certificate naming another
// member is refused, and nothing is added.
func TestJoinNeedsTheClusterCertificate(t *testing.T) {
	p := newTestPKI(t)
	c := newCluster(t, 1, p.secure(nil))
	admin := p.admin()
	join := []string{c.servers[0].PeerAddr()}

	plain := memberConfig(t, "plain")
	plain.Join = join
	if s, err := Start(testCtx(), plain); err == nil {
		s.Close()
		t.Fatal("a member without a certificate joined")
	}
	other := newTestPKI(t)
	stranger := memberConfig(t, "stranger")
	stranger.Join = join
	stranger.PeerTLS, stranger.ClientTLS = other.member("stranger", dcs.RoleData)
	if s, err := Start(testCtx(), stranger); err == nil {
		s.Close()
		t.Fatal("a member with another cluster's certificate joined")
	}
	// A certificate issued to "x" does not let its holder join as "y".
	y := memberConfig(t, "y")
	y.Join = join
	y.PeerTLS, y.ClientTLS = p.member("x", dcs.RoleData)
	_, err := Start(testCtx(), y)
	if err == nil || !strings.Contains(err.Error(), `permission denied: "x" is not a member`) {
		t.Fatalf("join as y with x's certificate: %v", err)
	}
	if n := memberCount(t, join[0], admin); n != 1 {
		t.Fatalf("%d members after refused joins, want 1", n)
	}
}

// TestRemoveNeedsTheAdministrator: nobody without a credential of this
// cluster removes a member; the administrator does. (A data member may
// forward a remove it received: its host holds the CA, so it is trusted
// as much as the administrator; a witness may not, TestWitnessCannotDoDataWork.)
func TestRemoveNeedsTheAdministrator(t *testing.T) {
	p := newTestPKI(t)
	c := newCluster(t, 3, p.secure(nil))
	addr := c.servers[0].PeerAddr()
	if err := call(t, addr, dcs.TLSConfig{}, dcs.RPCRemove, dcs.Member{Name: "m2"}); err == nil {
		t.Fatal("a remove without a certificate was served")
	}
	other := newTestPKI(t).admin()
	if err := call(t, addr, other, dcs.RPCRemove, dcs.Member{Name: "m2"}); err == nil {
		t.Fatal("a remove with another cluster's administrator certificate was served")
	}
	if n := memberCount(t, addr, p.admin()); n != 3 {
		t.Fatalf("%d members after refused removes, want 3", n)
	}
	if err := call(t, addr, p.admin(), dcs.RPCRemove, dcs.Member{Name: "m2"}); err != nil {
		t.Fatalf("admin remove: %v", err)
	}
	if n := memberCount(t, addr, p.admin()); n != 2 {
		t.Fatalf("%d members after the administrator's remove, want 2", n)
	}
}

// TestWitnessCannotDoDataWork: a witness's certificate adds, refreshes or
// removes no member but itself, and cannot claim the data role.
func TestWitnessCannotDoDataWork(t *testing.T) {
	p := newTestPKI(t)
	c := newCluster(t, 3, p.secure(map[string]string{"m2": dcs.RoleWitness}))
	w := c.cfgs[2].PeerTLS
	addr := c.servers[0].PeerAddr()
	for _, tc := range []struct {
		m   dcs.RPCMethod
		mem dcs.Member
		msg string
	}{
		{dcs.RPCJoin, dcs.Member{Name: "evil", Role: dcs.RoleData, PeerAddr: "127.0.0.1:1"}, "data-only work"},
		{dcs.RPCJoin, dcs.Member{Name: "m2", Role: dcs.RoleData, PeerAddr: c.cfgs[2].ListenPeer}, "says role witness, not data"},
		{dcs.RPCRemove, dcs.Member{Name: "m1"}, "data-only work"},
	} {
		err := call(t, addr, w, tc.m, tc.mem)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("witness %d %+v: %v, want %q", tc.m, tc.mem, err, tc.msg)
		}
	}
	if n := memberCount(t, addr, p.admin()); n != 3 {
		t.Fatalf("%d members, want 3", n)
	}
}
