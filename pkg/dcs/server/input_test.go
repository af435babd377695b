package server

import (
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/status"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/dcs/mvcc"
)

// gatewayPost sends body to a member's JSON gateway and returns the status and body.
func gatewayPost(t *testing.T, s *Server, path, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(s.ClientURL()+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHugeLimitNeitherCrashesNorStopsTheCluster sends the range limit
// that overflowed limit+1 directly (to a follower and the leader), then
// inside a txn, which is committed to the log and applied by every
// member, then restarts every member so they replay it: every answer is
// etcd's, and the cluster comes back.
func TestHugeLimitNeitherCrashesNorStopsTheCluster(t *testing.T) {
	c := newCluster(t, 3, nil)
	cl := c.client()
	ctx := ctxT(t, 60*time.Second)
	for _, k := range []string{"/a", "/b"} {
		if _, err := cl.Put(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	limit := fmt.Sprint(int64(math.MaxInt64))
	for _, s := range c.servers {
		code, body := gatewayPost(t, s, "/v3/kv/range", `{"key":"Lw==","range_end":"MA==","limit":"`+limit+`"}`)
		if code != 200 || !strings.Contains(body, `"count":"2"`) || strings.Contains(body, `"more"`) {
			t.Fatalf("range with limit %s on %s: %d %s", limit, s.Name(), code, body)
		}
	}
	txn := `{"success":[{"request_range":{"key":"Lw==","range_end":"MA==","limit":"` + limit + `"}}]}`
	code, body := gatewayPost(t, c.servers[c.leader()], "/v3/kv/txn", txn)
	if code != 200 || !strings.Contains(body, `"count":"2"`) {
		t.Fatalf("txn with a range of limit %s: %d %s", limit, code, body)
	}
	for i := range c.servers {
		c.stop(i)
	}
	for i := range c.servers {
		c.restart(i)
	}
	cl = c.client()
	if _, err := cl.Put(ctx, "/after", "restart"); err != nil {
		t.Fatalf("put after restarting every member: %v", err)
	}
	if g, err := cl.Get(ctx, "/", clientv3.WithPrefix()); err != nil || g.Count != 3 {
		t.Fatalf("get after restart: %v %v", g, err)
	}
}

// forwardRaw sends cmd to addr's peer port as a follower forwards it.
func forwardRaw(t *testing.T, addr string, cmd []byte) error {
	pc := newPeerClient(addr, nil)
	defer pc.close()
	_, err := pc.call(ctxT(t, 10*time.Second), dcs.RPCForward, cmd)
	return err
}

// TestForwardedCommandsAreChecked forwards, over the leader's peer port,
// what the client API refuses: a peer gets the same etcd errors, and
// nothing is applied.
func TestForwardedCommandsAreChecked(t *testing.T) {
	c := newCluster(t, 1, nil)
	leader := c.servers[0]
	addr := leader.PeerAddr()
	put := func(size int) []byte {
		cmd, _ := encodeMsg(opPut, &pb.PutRequest{Key: []byte("/big"), Value: make([]byte, size)})
		return cmd
	}
	wantErr(t, forwardRaw(t, addr, put(mvcc.MaxRequestBytes)), "etcdserver: request is too large")
	// Eight MiB is beyond the peer port's frame limit: the connection is
	// closed without reading it.
	if err := forwardRaw(t, addr, put(8<<20)); err == nil {
		t.Fatal("an 8 MiB forwarded put was accepted")
	}
	grant, _ := encodeMsg(opLeaseGrant, &pb.LeaseGrantRequest{ID: 7, TTL: mvcc.MaxLeaseTTL + 1})
	wantErr(t, forwardRaw(t, addr, grant), "etcdserver: too large lease TTL")
	wantErr(t, forwardRaw(t, addr, encodeInts(opLeaseRefresh, 7, 9e18)), "etcdserver: too large lease TTL")
	empty, _ := encodeMsg(opPut, &pb.PutRequest{Value: []byte("x")})
	wantErr(t, forwardRaw(t, addr, empty), "etcdserver: key is not provided")
	member, _ := encodeJSON(opMemberSet, dcs.Member{Name: "intruder"})
	wantErr(t, forwardRaw(t, addr, member), "cannot be forwarded")
	wantErr(t, forwardRaw(t, addr, []byte{0xff}), "unknown command op")

	// A refresh carrying a TTL far beyond the grant renews to the grant.
	grant, _ = encodeMsg(opLeaseGrant, &pb.LeaseGrantRequest{ID: 8, TTL: 10})
	if err := forwardRaw(t, addr, grant); err != nil {
		t.Fatal(err)
	}
	if err := forwardRaw(t, addr, encodeInts(opLeaseRefresh, 8, 9e9)); err != nil {
		t.Fatal(err)
	}
	cl := c.client()
	ctx := ctxT(t, 10*time.Second)
	ttl, err := cl.TimeToLive(ctx, 8)
	if err != nil || ttl.TTL > 10 {
		t.Fatalf("lease 8 after a refresh with TTL 9e9: %+v, %v", ttl, err)
	}
	if g, err := cl.Get(ctx, "/big"); err != nil || g.Count != 0 {
		t.Fatalf("a refused put was applied: %v %v", g, err)
	}
	if _, ok := leader.node.fsm.member("intruder"); ok {
		t.Fatal("a forwarded member command was applied")
	}
}

// TestLimitsAtTheirBoundary: a request at exactly each limit is accepted,
// one byte or one op over is refused with etcd's error; a grant below the
// minimum TTL is raised to it.
func TestLimitsAtTheirBoundary(t *testing.T) {
	c := newCluster(t, 1, func(cfg *dcs.Config) { cfg.HeartbeatTimeout = time.Second })
	cl := c.client()
	ctx := ctxT(t, 30*time.Second)

	req := &pb.PutRequest{Key: []byte("/k")}
	req.Value = make([]byte, mvcc.MaxRequestBytes-req.Size()-4) // 4: value's tag and length varint
	if req.Size() != mvcc.MaxRequestBytes {
		t.Fatalf("test put is %d bytes", req.Size())
	}
	if _, err := cl.Put(ctx, "/k", string(req.Value)); err != nil {
		t.Fatalf("put of exactly %d bytes: %v", mvcc.MaxRequestBytes, err)
	}
	_, err := cl.Put(ctx, "/k", string(req.Value)+"x")
	wantErr(t, err, "etcdserver: request is too large")

	ops := func(n int) []clientv3.Op {
		var out []clientv3.Op
		for i := range n {
			out = append(out, clientv3.OpPut(fmt.Sprintf("/t/%d", i), "v"))
		}
		return out
	}
	if _, err := cl.Txn(ctx).Then(ops(mvcc.MaxTxnOps)...).Commit(); err != nil {
		t.Fatalf("txn of %d ops: %v", mvcc.MaxTxnOps, err)
	}
	_, err = cl.Txn(ctx).Then(ops(mvcc.MaxTxnOps + 1)...).Commit()
	wantErr(t, err, "etcdserver: too many operations in txn request")

	if g, err := cl.Grant(ctx, mvcc.MaxLeaseTTL); err != nil || g.TTL != mvcc.MaxLeaseTTL {
		t.Fatalf("grant of the largest TTL: %v %v", g, err)
	}
	_, err = cl.Grant(ctx, mvcc.MaxLeaseTTL+1)
	wantErr(t, err, "etcdserver: too large lease TTL")
	// etcd's minimum with a 1 s election timeout: 2 s.
	if g, err := cl.Grant(ctx, 1); err != nil || g.TTL != 2 {
		t.Fatalf("grant of 1 s: %v %v, want TTL 2", g, err)
	}
	// Through the gateway: the largest put is accepted; a body far over
	// any request is refused before it is decoded.
	code, body := gatewayPost(t, c.servers[0], "/v3/kv/put",
		`{"key":"L2s=","value":"`+base64.StdEncoding.EncodeToString(req.Value)+`"}`)
	if code != 200 {
		t.Fatalf("put of exactly %d bytes through the gateway: %d %.200s", mvcc.MaxRequestBytes, code, body)
	}
	code, body = gatewayPost(t, c.servers[0], "/v3/kv/put", `{"key":"`+strings.Repeat("A", 16<<20)+`"}`)
	if code != 400 || !strings.Contains(body, "http: request body too large") {
		t.Fatalf("16 MiB body through the gateway: %d %.200s", code, body)
	}
}

// TestApplyRefusesWhatTheChecksRefuse: an entry that reached the log
// without the checks (an older member's, a forged one) is refused in Apply
// with the same etcd error on every member, and changes nothing.
func TestApplyRefusesWhatTheChecksRefuse(t *testing.T) {
	big, _ := encodeMsg(opPut, &pb.PutRequest{Key: []byte("/big"), Value: make([]byte, mvcc.MaxRequestBytes)})
	grant, _ := encodeMsg(opLeaseGrant, &pb.LeaseGrantRequest{ID: 1, TTL: mvcc.MaxLeaseTTL + 1})
	var ops []*pb.RequestOp
	for i := range mvcc.MaxTxnOps + 1 {
		ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(fmt.Sprint(i))}}})
	}
	txn, _ := encodeMsg(opTxn, &pb.TxnRequest{Success: ops})
	members := []*fsm{currentFSM(), currentFSM()}
	for _, tc := range []struct {
		cmd  []byte
		want string
	}{
		{big, "etcdserver: request is too large"},
		{grant, "etcdserver: too large lease TTL"},
		{txn, "etcdserver: too many operations in txn request"},
		{encodeInts(opLeaseRefresh, 1, mvcc.MaxLeaseTTL+1), "etcdserver: too large lease TTL"},
	} {
		for i, f := range members {
			r, _ := f.Apply(&raft.Log{Type: raft.LogCommand, Index: 1, Data: tc.cmd}).(*applyResult)
			if r == nil || status.Convert(r.err).Message() != tc.want {
				t.Fatalf("member %d applied a %d-byte op %d: %+v, want %q", i, len(tc.cmd), tc.cmd[0], r, tc.want)
			}
			if f.store.Rev() != 1 || len(f.store.Leases().Leases) != 0 {
				t.Fatalf("member %d: a refused entry changed the store", i)
			}
		}
	}
}

// limitScenario sends requests at and over etcd's limits and renders the
// answers.
func limitScenario(t *testing.T, cl *clientv3.Client) []string {
	ctx := ctxT(t, 30*time.Second)
	var out []string
	note := func(what string, v any, err error) {
		if ee, ok := err.(rpctypes.EtcdError); ok {
			v = ee.Code().String() + ": " + ee.Error()
		} else if err != nil {
			v = err
		}
		out = append(out, fmt.Sprintf("%s: %v", what, v))
	}
	for _, k := range []string{"/l/a", "/l/b"} {
		_, err := cl.Put(ctx, k, "v")
		note("put "+k, "ok", err)
	}
	r, err := cl.Get(ctx, "/l/", clientv3.WithPrefix(), clientv3.WithLimit(math.MaxInt64))
	if err == nil {
		note("range limit MaxInt64", fmt.Sprintf("count %d kvs %d more %v", r.Count, len(r.Kvs), r.More), nil)
	} else {
		note("range limit MaxInt64", nil, err)
	}
	txn, err := cl.Txn(ctx).Then(clientv3.OpGet("/l/", clientv3.WithPrefix(), clientv3.WithLimit(math.MaxInt64))).Commit()
	if err == nil {
		note("txn range limit MaxInt64", fmt.Sprintf("kvs %d", len(txn.Responses[0].GetResponseRange().Kvs)), nil)
	} else {
		note("txn range limit MaxInt64", nil, err)
	}
	_, err = cl.Put(ctx, "/l/big", string(make([]byte, mvcc.MaxRequestBytes)))
	note("put over 1.5 MiB", "ok", err)
	var ops []clientv3.Op
	for i := range mvcc.MaxTxnOps + 1 {
		ops = append(ops, clientv3.OpPut(fmt.Sprintf("/l/t%d", i), "v"))
	}
	_, err = cl.Txn(ctx).Then(ops...).Commit()
	note("txn of 129 ops", "ok", err)
	_, err = cl.Txn(ctx).Then(ops[:mvcc.MaxTxnOps]...).Commit()
	note("txn of 128 ops", "ok", err)
	for _, ttl := range []int64{1, mvcc.MaxLeaseTTL, mvcc.MaxLeaseTTL + 1} {
		g, err := cl.Grant(ctx, ttl)
		if err == nil {
			note(fmt.Sprint("grant TTL ", ttl), g.TTL, nil)
		} else {
			note(fmt.Sprint("grant TTL ", ttl), nil, err)
		}
	}
	return out
}

// TestLimitsAsEtcd: the same requests at and over the limits get the same
// answers from a member as from etcd 3.4 (default timing, so a 2 s
// minimum lease TTL on both).
func TestLimitsAsEtcd(t *testing.T) {
	c := newCluster(t, 1, func(cfg *dcs.Config) { cfg.HeartbeatTimeout = time.Second })
	ours := limitScenario(t, c.client())
	e := startRealEtcd(t, 1)
	cl, err := clientv3.New(clientv3.Config{Endpoints: e.clientURLs, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if etcd := limitScenario(t, cl); strings.Join(etcd, "\n") != strings.Join(ours, "\n") {
		t.Fatalf("answers differ:\nours:\n%s\netcd:\n%s", strings.Join(ours, "\n"), strings.Join(etcd, "\n"))
	}
}
