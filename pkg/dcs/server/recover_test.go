package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestPanicsFailTheRequestNotTheMember makes real handlers panic (a
// server without a node) behind the gRPC interceptors and the gateway
// wrapper: the call fails with Internal, the panic is logged once with its
// stack, and a live member in the same process keeps answering.
func TestPanicsFailTheRequestNotTheMember(t *testing.T) {
	c := newCluster(t, 1, nil)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	broken := &kvServer{s: &Server{}}

	_, err := recoverUnary(log)(context.Background(), rangeReq("/k"), &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Range"},
		func(ctx context.Context, req any) (any, error) { return broken.Range(ctx, req.(*pb.RangeRequest)) })
	if status.Code(err) != codes.Internal {
		t.Fatalf("unary panic: %v, want Internal", err)
	}
	err = recoverStream(log)(nil, nil, &grpc.StreamServerInfo{FullMethod: "/etcdserverpb.Lease/LeaseKeepAlive"},
		func(any, grpc.ServerStream) error { return (&leaseServer{s: &Server{}}).LeaseKeepAlive(nil) })
	if status.Code(err) != codes.Internal {
		t.Fatalf("stream panic: %v, want Internal", err)
	}
	rec := httptest.NewRecorder()
	recoverHTTP(log, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		broken.Put(context.Background(), &pb.PutRequest{Key: []byte("k")})
	})).
		ServeHTTP(rec, httptest.NewRequest("POST", "/v3/kv/put", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"code":13`) {
		t.Fatalf("gateway panic: %d %s", rec.Code, rec.Body)
	}
	if n := strings.Count(logs.String(), "panicked"); n != 3 || !strings.Contains(logs.String(), "goroutine") {
		t.Fatalf("%d panic log lines (want 3, with stacks):\n%s", n, logs.String())
	}
	if _, err := c.client().Put(ctxT(t, 10*time.Second), "/still", "here"); err != nil {
		t.Fatalf("the member stopped serving: %v", err)
	}
}

// TestApplyRecoversAndAnswersTheSameEverywhere: an entry whose apply
// panics is answered with Internal, logged once, and the FSM goes on.
func TestApplyRecoversAndAnswersTheSameEverywhere(t *testing.T) {
	var logs bytes.Buffer
	f := currentFSM()
	f.log = slog.New(slog.NewTextHandler(&logs, nil))
	store := f.store
	f.store = nil // the next apply dereferences it
	cmd, _ := encodeMsg(opPut, &pb.PutRequest{Key: []byte("k")})
	r, _ := f.Apply(&raft.Log{Type: raft.LogCommand, Index: 5, Data: cmd}).(*applyResult)
	if r == nil || status.Code(r.err) != codes.Internal {
		t.Fatalf("panicking apply: %+v", r)
	}
	if strings.Count(logs.String(), "apply panicked") != 1 {
		t.Fatalf("log: %s", logs.String())
	}
	f.store = store
	r, _ = f.Apply(&raft.Log{Type: raft.LogCommand, Index: 6, Data: cmd}).(*applyResult)
	if r == nil || r.err != nil || f.store.Rev() != 2 {
		t.Fatalf("apply after a recovered panic: %+v", r)
	}
}

// TestRestoreRefusesAHugeMemberTable: a snapshot (which a peer may send)
// announcing a 4 GiB member table is refused before anything is allocated.
func TestRestoreRefusesAHugeMemberTable(t *testing.T) {
	snap := append([]byte(snapshotMagic), 0xff, 0xff, 0xff, 0xff)
	err := newFSM(0).Restore(io.NopCloser(bytes.NewReader(snap)))
	wantErr(t, err, "member table of 4294967295 bytes is larger than")
}
