package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/dcs/mvcc"
)

// fuzzMember starts one member for a fuzz target (each fuzzing worker
// process starts its own) and returns it once it leads.
func fuzzMember(f *testing.F) *Server {
	cfg := dcs.Config{Name: "fuzz", DataDir: filepath.Join(f.TempDir(), "fuzz"), ListenPeer: "127.0.0.1:0",
		ListenClient: "127.0.0.1:0", HeartbeatTimeout: testHeartbeat}
	s, err := Start(context.Background(), cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	for deadline := time.Now().Add(10 * time.Second); !s.node.isLeader(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			f.Fatal("no leader")
		}
	}
	return s
}

// stillServes fails t unless the member answers a range through gRPC.
func stillServes(t *testing.T, s *Server, conn *grpc.ClientConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pb.NewKVClient(conn).Range(ctx, rangeReq("/alive")); err != nil {
		t.Fatalf("the member stopped answering: %v", err)
	}
}

func isPanic(err error) bool {
	return status.Code(err) == codes.Internal && strings.Contains(status.Convert(err).Message(), "internal error")
}

// gatewayPaths are the JSON gateway's routes; a fuzz input picks one with
// its first byte.
var gatewayPaths = []string{
	"/v3/kv/range", "/v3/kv/put", "/v3/kv/deleterange", "/v3/kv/txn", "/v3/kv/compaction",
	"/v3/lease/grant", "/v3/lease/revoke", "/v3/lease/keepalive", "/v3/lease/timetolive", "/v3/lease/leases",
	"/v3/watch", "/v3/cluster/member/list", "/v3/maintenance/status", "/v3/maintenance/alarm", "/v3/auth/authenticate",
}

// FuzzGatewayJSON posts arbitrary bodies to every gateway route of a live
// member: no request makes a handler panic, and the member keeps answering.
func FuzzGatewayJSON(f *testing.F) {
	for i, body := range []string{
		`{"key":"L2E=","range_end":"MA==","limit":"9223372036854775807","sort_order":"DESCEND"}`,
		`{"key":"L2E=","value":"MQ==","lease":"7"}`,
		`{"key":"AA==","range_end":"AA==","prev_kv":true}`,
		`{"compare":[{"key":"L2E=","target":"MOD","mod_revision":"-1"}],"success":[{"request_range":{"key":"L2E=","limit":"-9223372036854775808"}}],"failure":[{"request_txn":{}}]}`,
		`{"revision":"9223372036854775807"}`,
		`{"TTL":"9000000001","ID":"-1"}`,
		`{"ID":"9223372036854775807"}`,
		`{"ID":"1"}`,
		`{"ID":"1","keys":true}`,
		`{}`,
		`{"create_request":{"key":"L2E=","start_revision":"-5","watch_id":"-1"}}`,
		`{"linearizable":true}`, `{}`, `{"action":"GET","alarm":"NOSPACE"}`, `{"name":"x","password":"y"}`,
	} {
		f.Add(byte(i), []byte(body))
	}
	s := fuzzMember(f)
	conn := s.gwConn
	hc := &http.Client{Timeout: 200 * time.Millisecond} // a watch streams until the client leaves
	f.Fuzz(func(t *testing.T, route byte, body []byte) {
		path := gatewayPaths[int(route)%len(gatewayPaths)]
		resp, err := hc.Post(s.ClientURL()+path, "application/json", bytes.NewReader(body))
		if err == nil {
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(out, []byte(`"code":13`)) && bytes.Contains(out, []byte("internal error")) {
				t.Fatalf("POST %s %q: a handler panicked: %s", path, body, out)
			}
		}
		stillServes(t, s, conn)
	})
}

// rawCodec sends fuzz bytes to the server as they are, so that its own
// decoding is fuzzed too.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string   { return "proto" }
func (rawCodec) String() string { return "raw" }

// grpcMethods are the etcd API's methods; a fuzz input picks one with its
// first byte. Streams are sent one message.
var grpcMethods = []struct {
	name   string
	stream bool
	seed   message
}{
	{"/etcdserverpb.KV/Range", false, &pb.RangeRequest{Key: []byte("/a"), RangeEnd: []byte{0}, Limit: 1<<63 - 1}},
	{"/etcdserverpb.KV/Put", false, &pb.PutRequest{Key: []byte("/a"), Value: []byte("v"), PrevKv: true}},
	{"/etcdserverpb.KV/DeleteRange", false, &pb.DeleteRangeRequest{Key: []byte("/a"), RangeEnd: []byte{0}}},
	{"/etcdserverpb.KV/Txn", false, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("/a"), Limit: 1<<63 - 1}}}}}},
	{"/etcdserverpb.KV/Compact", false, &pb.CompactionRequest{Revision: 1<<63 - 1}},
	{"/etcdserverpb.Lease/LeaseGrant", false, &pb.LeaseGrantRequest{TTL: mvcc.MaxLeaseTTL + 1}},
	{"/etcdserverpb.Lease/LeaseRevoke", false, &pb.LeaseRevokeRequest{ID: -1}},
	{"/etcdserverpb.Lease/LeaseTimeToLive", false, &pb.LeaseTimeToLiveRequest{ID: 1, Keys: true}},
	{"/etcdserverpb.Lease/LeaseLeases", false, &pb.LeaseLeasesRequest{}},
	{"/etcdserverpb.Lease/LeaseKeepAlive", true, &pb.LeaseKeepAliveRequest{ID: 1}},
	{"/etcdserverpb.Watch/Watch", true, &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("/a"), StartRevision: -1}}}},
	{"/etcdserverpb.Cluster/MemberList", false, &pb.MemberListRequest{}},
	{"/etcdserverpb.Maintenance/Status", false, &pb.StatusRequest{}},
	{"/etcdserverpb.Maintenance/Alarm", false, &pb.AlarmRequest{}},
	{"/etcdserverpb.Auth/Authenticate", false, &pb.AuthenticateRequest{Name: "x"}},
}

// FuzzGRPC sends arbitrary bytes as the request of every etcd method to a
// live member: nothing panics, and the member keeps answering.
func FuzzGRPC(f *testing.F) {
	for i, m := range grpcMethods {
		b, _ := m.seed.Marshal()
		f.Add(byte(i), b)
	}
	s := fuzzMember(f)
	conn, err := grpc.NewClient(strings.TrimPrefix(s.ClientURL(), "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { conn.Close() })
	f.Fuzz(func(t *testing.T, method byte, req []byte) {
		m := grpcMethods[int(method)%len(grpcMethods)]
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		var out []byte
		if m.stream {
			st, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, m.name, grpc.ForceCodec(rawCodec{}))
			if err == nil {
				st.SendMsg(&req)
				st.CloseSend()
				err = st.RecvMsg(&out)
			}
			if isPanic(err) {
				t.Fatalf("%s %x: a handler panicked", m.name, req)
			}
		} else if err := conn.Invoke(ctx, m.name, &req, &out, grpc.ForceCodec(rawCodec{})); isPanic(err) {
			t.Fatalf("%s %x: a handler panicked", m.name, req)
		}
		stillServes(t, s, conn)
	})
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "fuzz" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

// FuzzApplySnapshot applies a sequence of commands built from the input
// (valid ones of every kind with extreme integers, and raw bytes) to the
// state machine, then snapshots it and restores the snapshot into another:
// no apply panics, and the restored state machine snapshots to the same
// bytes.
func FuzzApplySnapshot(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x80, 0xff, 0x7f})
	f.Add([]byte{3, 0xff, 0xff, 0, 2, 5, 6, 1, 9, 4, 10})
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	ints := []int64{0, 1, -1, 2, 7, 1<<63 - 1, -1 << 63, mvcc.MaxLeaseTTL, mvcc.MaxLeaseTTL + 1}
	keys := [][]byte{nil, []byte("/a"), []byte("/b"), {0}, []byte("/a\xff")}
	f.Fuzz(func(t *testing.T, in []byte) {
		next := func() byte {
			if len(in) == 0 {
				return 0
			}
			b := in[0]
			in = in[1:]
			return b
		}
		num := func() int64 { return ints[int(next())%len(ints)] }
		key := func() []byte { return keys[int(next())%len(keys)] }
		a := currentFSM()
		a.store = mvcc.New(mvcc.Options{Now: clock})
		for i := uint64(1); len(in) > 0; i++ {
			var cmd []byte
			switch next() % 12 {
			case 0:
				cmd, _ = encodeMsg(opPut, &pb.PutRequest{Key: key(), Value: []byte{next()}, Lease: num(), PrevKv: true, IgnoreLease: next()%4 == 0})
			case 1:
				cmd, _ = encodeMsg(opDeleteRange, &pb.DeleteRangeRequest{Key: key(), RangeEnd: key(), PrevKv: true})
			case 2:
				r := &pb.RangeRequest{Key: key(), RangeEnd: key(), Limit: num(), Revision: num(), SortOrder: pb.RangeRequest_SortOrder(next() % 4), SortTarget: pb.RangeRequest_SortTarget(next() % 6)}
				cmd, _ = encodeMsg(opTxn, &pb.TxnRequest{
					Compare: []*pb.Compare{{Key: key(), Target: pb.Compare_CompareTarget(next() % 6), Result: pb.Compare_CompareResult(next() % 5), TargetUnion: &pb.Compare_ModRevision{ModRevision: num()}}},
					Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: r}}, {Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: key()}}}},
					Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: key()}}}},
				})
			case 3:
				cmd, _ = encodeMsg(opLeaseGrant, &pb.LeaseGrantRequest{ID: num(), TTL: num()})
			case 4:
				cmd = encodeInts(opLeaseRevoke, num())
			case 5:
				cmd = encodeInts(opLeaseRefresh, num(), num())
			case 6:
				cmd = encodeInts(opCompact, num())
			case 7:
				cmd, _ = encodeJSON(opMemberSet, dcs.Member{Name: string(key())})
			case 8:
				cmd, _ = encodeJSON(opMemberRemove, dcs.Member{Name: string(key())})
			case 9:
				cmd = encodeInts(opClusterInit, num())
			default: // raw bytes
				n := int(next()) % (len(in) + 1)
				cmd, in = in[:n], in[n:]
			}
			r, _ := a.Apply(&raft.Log{Type: raft.LogCommand, Index: i, Data: cmd}).(*applyResult)
			if r != nil && isPanic(r.err) {
				t.Fatalf("apply %x panicked", cmd)
			}
		}
		first := persisted(t, a)
		b := newFSM(0)
		b.store = mvcc.New(mvcc.Options{Now: clock})
		err := b.Restore(io.NopCloser(bytes.NewReader(first)))
		if a.clusterVersion() > applyVersion {
			// A committed cluster version this binary does not speak is a
			// newer cluster's: the member stops (checkNotDowngraded), and
			// its snapshot is refused, never misread.
			if err == nil || !strings.Contains(err.Error(), "upgrade pgherd") {
				t.Fatalf("a snapshot at cluster version %d restored: %v", a.clusterVersion(), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("restore: %v", err)
		}
		if !bytes.Equal(persisted(t, b), first) {
			t.Fatal("the restored state machine differs")
		}
	})
}
