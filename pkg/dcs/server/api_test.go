package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// TestKVThroughFollower writes and reads through a follower, so every
// request is forwarded to the leader.
func TestKVThroughFollower(t *testing.T) {
	c := newCluster(t, 3, nil)
	follower := (c.leader() + 1) % 3
	cl := c.client(c.servers[follower].ClientURL())
	ctx := ctxT(t, 20*time.Second)

	put, err := cl.Put(ctx, "/a/1", "one")
	if err != nil {
		t.Fatal(err)
	}
	get, err := cl.Get(ctx, "/a/1")
	if err != nil {
		t.Fatal(err)
	}
	if len(get.Kvs) != 1 || string(get.Kvs[0].Value) != "one" || get.Kvs[0].ModRevision != put.Header.Revision {
		t.Fatalf("get after put: %+v (put revision %d)", get.Kvs, put.Header.Revision)
	}
	if get.Header.MemberId != dcs.MemberID("m"+string(rune('0'+follower))) || get.Header.ClusterId == 0 || get.Header.RaftTerm == 0 {
		t.Fatalf("header not stamped: %+v", get.Header)
	}
	txn, err := cl.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision("/a/1"), "=", 0)).
		Then(clientv3.OpPut("/a/1", "again")).Commit()
	if err != nil || txn.Succeeded {
		t.Fatalf("txn CREATE==0 on an existing key: succeeded=%v err=%v", txn != nil && txn.Succeeded, err)
	}
	lease, err := cl.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Put(ctx, "/a/leased", "x", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	ka, err := cl.KeepAliveOnce(ctx, lease.ID)
	if err != nil || ka.TTL != 30 {
		t.Fatalf("keepalive: %+v %v", ka, err)
	}
	ttl, err := cl.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.GrantedTTL != 30 || len(ttl.Keys) != 1 {
		t.Fatalf("timetolive: %+v %v", ttl, err)
	}
	if _, err := cl.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Put(ctx, "/a/x", "y", clientv3.WithLease(lease.ID)); err != rpctypes.ErrLeaseNotFound {
		t.Fatalf("put with revoked lease: %v, want %v", err, rpctypes.ErrLeaseNotFound)
	}
	get, err = cl.Get(ctx, "/a/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(get.Kvs) != 1 {
		t.Fatalf("after revoke want only /a/1, got %d keys", len(get.Kvs))
	}
	big := make([]byte, 1600<<10) // over etcd's 1.5 MiB limit, under gRPC's
	if _, err := cl.Put(ctx, "/big", string(big)); err != rpctypes.ErrRequestTooLarge {
		t.Fatalf("a 1.6 MiB put: %v, want %v", err, rpctypes.ErrRequestTooLarge)
	}
}

// TestMembersAndLeave lists members through the admin client and the etcd
// API, removes one (twice: the second time is a no-op) and checks that an
// API outside the subset answers Unimplemented.
func TestMembersAndLeave(t *testing.T) {
	c := newCluster(t, 3, func(cfg *dcs.Config) { cfg.Zone = "z-" + cfg.Name })
	ctx := ctxT(t, 20*time.Second)
	ac, err := dcs.NewAdminClient(c.servers[1].PeerAddr(), dcs.TLSConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	ms, err := ac.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaders := 0
	for _, m := range ms {
		if m.Role != dcs.RoleData || m.Suffrage != "voter" || !m.Healthy || m.Zone != "z-"+m.Name || m.ClientURL == "" {
			t.Errorf("member %+v", m)
		}
		if m.RaftState == "leader" {
			leaders++
		}
	}
	if len(ms) != 3 || leaders != 1 {
		t.Fatalf("members %+v", ms)
	}
	cl := c.client()
	ml, err := cl.MemberList(ctx)
	if err != nil || len(ml.Members) != 3 || ml.Members[0].ClientURLs[0] == "" {
		t.Fatalf("member list %+v %v", ml, err)
	}
	if _, err := cl.AuthEnable(ctx); status.Code(err) != codes.Unimplemented {
		t.Fatalf("AuthEnable: %v, want Unimplemented", err)
	}
	resp, err := http.Post(c.servers[0].ClientURL()+"/v3/auth/authenticate", "application/json", strings.NewReader(`{"name":"x","password":"y"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `{"error":"etcdserver: authentication is not enabled","message":"etcdserver: authentication is not enabled","code":9}`; string(body) != want {
		t.Fatalf("authenticate: %s, want %s", body, want)
	}
	victim := (c.leader() + 1) % 3
	name := c.servers[victim].Name()
	for range 2 {
		if err := ac.Leave(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	ms, err = ac.Members(ctx)
	if err != nil || len(ms) != 2 {
		t.Fatalf("after leave: %+v %v", ms, err)
	}
	st, err := ac.Status(ctx)
	if err != nil || st.Leader == "" || st.Term == 0 {
		t.Fatalf("status %+v %v", st, err)
	}
}
