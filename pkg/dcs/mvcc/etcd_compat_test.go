package mvcc

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// etcdClients are the gRPC clients of a real etcd started by startEtcd.
type etcdClients struct {
	kv    pb.KVClient
	lease pb.LeaseClient
	watch pb.WatchClient
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startEtcd runs a single-member etcd (Debian's etcd-server 3.4) on loopback with its data in memory
// (/dev/shm, so fsyncs are cheap), stopped by PID when the test ends.
func startEtcd(t *testing.T) etcdClients {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a real etcd; skipped with -short")
	}
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("etcd not installed (Debian package etcd-server)")
	}
	dir, err := os.MkdirTemp("/dev/shm", "mvcc-etcd-")
	if err != nil {
		dir = t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	cmd := exec.Command("etcd", "--name", "m", "--data-dir", dir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "m="+peer, "--log-level", "error")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	conn, err := grpc.NewClient(strings.TrimPrefix(client, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := etcdClients{kv: pb.NewKVClient(conn), lease: pb.NewLeaseClient(conn), watch: pb.NewWatchClient(conn)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.kv.Range(ctx, &pb.RangeRequest{Key: []byte("ready")})
		cancel()
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd not ready after 20s: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// normalize keeps only the revision of etcd's top-level header, as the store answers.
func normalize[R interface {
	GetHeader() *pb.ResponseHeader
	String() string
}](resp R, err error) (R, error) {
	if err == nil {
		if h := resp.GetHeader(); h != nil {
			*h = pb.ResponseHeader{Revision: h.Revision}
		}
	}
	return resp, err
}

// applyEtcd sends the op to etcd and renders the result like op.apply.
func (o op) applyEtcd(ctx context.Context, c etcdClients, rev int64) string {
	switch {
	case o.put != nil:
		return render(normalize(c.kv.Put(ctx, o.put)))
	case o.del != nil:
		return render(normalize(c.kv.DeleteRange(ctx, o.del)))
	case o.txn != nil:
		return render(normalize(c.kv.Txn(ctx, o.txn)))
	case o.rng != nil:
		return render(normalize(c.kv.Range(ctx, o.absolute(rev))))
	case o.grant != nil:
		return render(normalize(c.lease.LeaseGrant(ctx, o.grant)))
	case o.revoke != 0:
		return render(normalize(c.lease.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: o.revoke})))
	case o.compact != nil:
		_, err := c.kv.Compact(ctx, &pb.CompactionRequest{Revision: max(rev-*o.compact, 1)})
		return render(&pb.CompactionResponse{}, err)
	}
	return ""
}

// TestSameAnswersAsEtcd sends one random log to a real etcd 3.4 and to the store, and compares
// every answer (revisions, kvs, prev_kvs, counts, txn results, error messages), then the events of a
// watch over everything since the last compaction.
func TestSameAnswersAsEtcd(t *testing.T) {
	c := startEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := New(Options{HistoryLimit: 1 << 20})
	ops := randomOps(11, 2000, false)
	for i, o := range ops {
		rev := s.Rev()
		want := o.applyEtcd(ctx, c, rev)
		if got := o.apply(s); got != want {
			t.Fatalf("op %d %v at revision %d:\nstore: %s\netcd:  %s", i, []any{o.put, o.del, o.txn, o.rng, o.grant, o.revoke, o.compact}, rev, got, want)
		}
	}
	if s.Rev() < 150 || s.CompactRev() == 0 {
		t.Fatalf("the log exercises too little: revision %d, compacted %d", s.Rev(), s.CompactRev())
	}

	// Leases: granted TTL and keys (remaining TTLs depend on timing: only "unknown" is compared).
	for id := int64(1); id <= 4; id++ {
		req := &pb.LeaseTimeToLiveRequest{ID: id, Keys: true}
		want, err := normalize(c.lease.LeaseTimeToLive(ctx, req))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := s.LeaseTimeToLive(req)
		slices.SortFunc(want.Keys, bytes.Compare) // etcd lists them in map order
		if want.TTL > 0 {
			want.TTL = 1
		}
		if got.TTL > 0 {
			got.TTL = 1
		}
		if got.String() != want.String() {
			t.Errorf("timetolive %d:\nstore: %s\netcd:  %s", id, got, want)
		}
	}

	// A last put that every watch below sees, so that each knows where to stop.
	last := op{put: &pb.PutRequest{Key: []byte("/k/1~last"), Value: []byte("x")}}
	if got, want := last.apply(s), last.applyEtcd(ctx, c, s.Rev()); got != want {
		t.Fatalf("last put: store %s, etcd %s", got, want)
	}
	start := s.CompactRev() + 1
	for _, req := range []*pb.WatchCreateRequest{
		{Key: []byte{0}, RangeEnd: []byte{0}, StartRevision: start, PrevKv: true},
		{Key: []byte("/k/1"), RangeEnd: []byte("/k/2"), StartRevision: start, Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}},
	} {
		w := watch(t, s, req)
		var got []string
		for seen := int64(0); seen < s.Rev(); {
			select {
			case events := <-w.C():
				for _, ev := range events.Events {
					got = append(got, ev.String())
					seen = ev.Kv.ModRevision
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("store watch stopped after %d events", len(got))
			}
		}
		want := etcdEvents(ctx, t, c, req, s.Rev())
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("watch %v: events differ:\nstore:\n%s\netcd:\n%s", req, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// etcdEvents collects etcd's watch events until the one at revision last.
func etcdEvents(ctx context.Context, t *testing.T, c etcdClients, req *pb.WatchCreateRequest, last int64) []string {
	t.Helper()
	stream, err := c.watch.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: req}}); err != nil {
		t.Fatal(err)
	}
	var out []string
	for seen := int64(0); seen < last; {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("etcd watch: %v", err)
		}
		if resp.Canceled {
			t.Fatalf("etcd canceled the watch: %v", resp)
		}
		for _, ev := range resp.Events {
			out = append(out, ev.String())
			seen = ev.Kv.ModRevision
		}
	}
	return out
}
