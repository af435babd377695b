package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"runtime"
	"strconv"
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

const noSpace = "etcdserver: mvcc: database space exceeded"

// wantNoSpace checks for etcd's gRPC error, code and message.
func wantNoSpace(t *testing.T, what string, err error) {
	t.Helper()
	if s := status.Convert(err); err == nil || s.Code() != codes.ResourceExhausted || s.Message() != noSpace {
		t.Fatalf("%s: got %v, want ResourceExhausted %q", what, err, noSpace)
	}
}

// TestMemoryBoundedUnderLargePuts is the growth: 40 puts of 1 MB to
// one key grew a member by 45 MB, all of it history. The history is now
// bounded by bytes: the store accounts the live value and at most the
// 4 MiB history budget, and the heap grows by that and the Raft log's
// buffers (the heap figure can be noisy when other tests ran before in the
// same process; the accounted one is exact).
func TestMemoryBoundedUnderLargePuts(t *testing.T) {
	c := newCluster(t, 1, nil)
	cl := c.client()
	ctx := ctxT(t, 60*time.Second)
	value := strings.Repeat("v", 1<<20)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	for i := range 40 {
		if _, err := cl.Put(ctx, "/big", value); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	grown := int64(heap()) - int64(before)
	t.Logf("heap grew by %.1f MiB", float64(grown)/(1<<20))
	const bound = 16 << 20
	if grown > bound {
		t.Fatalf("heap grew by %d MiB after 40 puts of 1 MB to one key, want at most %d MiB", grown>>20, bound>>20)
	}
	if u := c.servers[0].node.fsm.store.Usage(); u > 1<<20+mvcc.DefaultHistoryBytes+4096 {
		t.Fatalf("store accounts %d bytes, want at most the live value and the history budget", u)
	}
	// What was dropped answers as etcd: a compacted watch.
	wc := cl.Watch(ctx, "/big", clientv3.WithRev(2))
	select {
	case wr := <-wc:
		if !wr.Canceled || wr.CompactRevision < 30 {
			t.Fatalf("watch from revision 2: canceled %v, compact revision %d; want canceled past 30", wr.Canceled, wr.CompactRevision)
		}
	case <-ctx.Done():
		t.Fatal("no answer to a watch of a compacted revision")
	}
}

// fillQuota puts 1 MiB values under /big/ until the quota (MinQuotaBytes)
// refuses one with etcd's error; it returns how many were accepted.
func fillQuota(ctx context.Context, t *testing.T, kv pb.KVClient) int {
	t.Helper()
	value := bytes.Repeat([]byte("x"), 1<<20)
	for n := 0; n < 10; n++ {
		_, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("/big/" + strconv.Itoa(n)), Value: value})
		if err != nil {
			wantNoSpace(t, "put past the quota", err)
			if n < 6 {
				t.Fatalf("refused after %d puts of 1 MiB, want 7 (8 MiB quota)", n)
			}
			return n
		}
	}
	t.Fatal("10 puts of 1 MiB accepted under an 8 MiB quota")
	return 0
}

// TestSpaceQuotaAlarm: a write past the quota raises NOSPACE on every
// member through the log; every write is then refused with etcd's error
// while deletes and compaction still work; the alarm survives a restart of
// every member; disarming it (through a follower) restores writes.
func TestSpaceQuotaAlarm(t *testing.T) {
	c := newCluster(t, 3, func(cfg *dcs.Config) { cfg.QuotaBytes = dcs.MinQuotaBytes })
	ctx := ctxT(t, 90*time.Second)
	cl := c.client()
	kv := pb.NewKVClient(cl.ActiveConnection())
	n := fillQuota(ctx, t, kv)
	waitAlarmed := func(want bool) {
		t.Helper()
		waitFor(t, 10*time.Second, "the alarm on every member", func() bool {
			for _, s := range c.servers {
				if s.node.fsm.alarmed(pb.AlarmType_NOSPACE) != want {
					return false
				}
			}
			return true
		})
	}
	waitAlarmed(true)
	leaderID := c.servers[c.leader()].node.id
	refused := func(when string) {
		t.Helper()
		_, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("/small"), Value: []byte("1")})
		wantNoSpace(t, when+": small put", err)
		_, err = kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("/t"), Value: []byte("1")}}}}})
		wantNoSpace(t, when+": txn put", err)
		_, err = pb.NewLeaseClient(cl.ActiveConnection()).LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 30})
		wantNoSpace(t, when+": lease grant", err)
		for _, s := range c.servers {
			resp, err := http.Post(s.ClientURL()+"/v3/kv/put", "application/json", strings.NewReader(`{"key":"Zm9v","value":"YmFy"}`))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), `"error":"`+noSpace+`"`) {
				t.Fatalf("%s: gateway put on %s: %d %s", when, s.Name(), resp.StatusCode, body)
			}
		}
	}
	refused("alarm raised")
	for _, s := range c.servers {
		list, err := pb.NewMaintenanceClient(c.client(s.ClientURL()).ActiveConnection()).Alarm(ctx, &pb.AlarmRequest{})
		if err != nil || len(list.Alarms) != 1 || list.Alarms[0].Alarm != pb.AlarmType_NOSPACE || list.Alarms[0].MemberID != leaderID {
			t.Fatalf("alarm list on %s: %v %v, want NOSPACE of the leader %x", s.Name(), list, err, leaderID)
		}
		resp, err := http.Post(s.ClientURL()+"/v3/maintenance/alarm", "application/json", strings.NewReader(`{"action":"GET"}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `"alarms":[{"memberID":"`+strconv.FormatUint(leaderID, 10)+`","alarm":"NOSPACE"}]`) {
			t.Fatalf("gateway alarm list on %s: %s", s.Name(), body)
		}
	}
	ac, err := dcs.NewAdminClient(c.servers[(c.leader()+1)%3].PeerAddr(), dcs.TLSConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	st, err := cl.Status(ctx, c.servers[0].ClientURL())
	if err != nil || st.DbSizeInUse < int64(n)<<20 || st.DbSizeInUse > dcs.MinQuotaBytes {
		t.Fatalf("status: %+v %v, want the accounted size in use", st, err)
	}
	if mi, err := ac.Status(ctx); err != nil || len(mi.Alarms) != 1 || mi.Alarms[0] != "memberID:"+strconv.FormatUint(leaderID, 10)+" alarm:NOSPACE" {
		t.Fatalf("dcs status of a follower: %+v %v, want the NOSPACE alarm", mi, err)
	}
	_, err = pb.NewMaintenanceClient(cl.ActiveConnection()).Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, Alarm: pb.AlarmType_NOSPACE})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("client activate: %v, want InvalidArgument", err)
	}

	// Freeing space: deleting and compacting are allowed; writes stay
	// refused until the alarm is disarmed.
	del, err := cl.Delete(ctx, "/big/", clientv3.WithPrefix())
	if err != nil || del.Deleted != int64(n) {
		t.Fatalf("delete under the alarm: %v %v", del, err)
	}
	if _, err := cl.Compact(ctx, del.Header.Revision); err != nil {
		t.Fatalf("compact under the alarm: %v", err)
	}
	refused("space freed, alarm still raised")

	// The alarm is replicated state: it survives every member's restart.
	c.stopAll()
	for i := range c.servers {
		c.restart(i)
	}
	c.leader()
	waitAlarmed(true)
	cl = c.client()
	kv = pb.NewKVClient(cl.ActiveConnection())
	refused("after a restart of every member")

	// Disarm through a follower's JSON gateway (etcdctl's gRPC disarm is
	// TestEtcdctlAlarm's).
	follower := c.servers[(c.leader()+1)%3]
	id := strconv.FormatUint(leaderID, 10)
	resp, err := http.Post(follower.ClientURL()+"/v3/maintenance/alarm", "application/json",
		strings.NewReader(`{"action":"DEACTIVATE","memberID":"`+id+`","alarm":"NOSPACE"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"alarms":[{"memberID":"`+id+`","alarm":"NOSPACE"}]`) {
		t.Fatalf("disarm through a follower's gateway: %d %s", resp.StatusCode, body)
	}
	waitAlarmed(false)
	if _, err := cl.Put(ctx, "/small", "1"); err != nil {
		t.Fatalf("put after disarm: %v", err)
	}
}

// TestAlarmSurvivesSnapshot: the alarm is part of the state machine's
// snapshot, and a restored member refuses writes as the others do.
func TestAlarmSurvivesSnapshot(t *testing.T) {
	f := currentFSM()
	apply := func(f *fsm, o op, m message) *applyResult {
		t.Helper()
		cmd, err := encodeMsg(o, m)
		if err != nil {
			t.Fatal(err)
		}
		return f.Apply(&raft.Log{Type: raft.LogCommand, Data: cmd}).(*applyResult)
	}
	apply(f, opPut, &pb.PutRequest{Key: []byte("k"), Value: []byte("v")})
	for _, bad := range []*pb.AlarmRequest{
		{Action: pb.AlarmRequest_ACTIVATE, MemberID: 7, Alarm: pb.AlarmType_CORRUPT},
		{Action: pb.AlarmRequest_ACTIVATE, MemberID: 7, Alarm: pb.AlarmType(99)},
		{Action: pb.AlarmRequest_AlarmAction(9), MemberID: 7, Alarm: pb.AlarmType_NOSPACE},
		{Action: pb.AlarmRequest_GET},
	} {
		if r := apply(f, opAlarm, bad); status.Code(r.err) != codes.InvalidArgument || f.alarmed(bad.Alarm) {
			t.Fatalf("alarm entry %v: %v, want InvalidArgument and no alarm", bad, r.err)
		}
	}
	apply(f, opAlarm, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 7, Alarm: pb.AlarmType_NOSPACE})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := newFSM(0)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if l := g.alarmList(pb.AlarmType_NONE); len(l.Alarms) != 1 || l.Alarms[0].MemberID != 7 || l.Alarms[0].Alarm != pb.AlarmType_NOSPACE {
		t.Fatalf("restored alarms: %v", l.Alarms)
	}
	wantNoSpace(t, "put on the restored member", apply(g, opPut, &pb.PutRequest{Key: []byte("k"), Value: []byte("w")}).err)
	if r := apply(g, opDeleteRange, &pb.DeleteRangeRequest{Key: []byte("k")}); r.err != nil {
		t.Fatalf("delete on the restored member: %v", r.err)
	}
	apply(g, opAlarm, &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: 7, Alarm: pb.AlarmType_NOSPACE})
	if r := apply(g, opPut, &pb.PutRequest{Key: []byte("k"), Value: []byte("w")}); r.err != nil {
		t.Fatalf("put after disarm: %v", r.err)
	}
}

// TestEtcdctlAlarm: with the default quota (32 MiB), Debian's etcdctl sees
// etcd's error on the put past it, lists the alarm, frees space and
// disarms it, as against etcd.
func TestEtcdctlAlarm(t *testing.T) {
	if _, err := exec.LookPath("etcdctl"); err != nil {
		t.Skip("etcdctl is not installed")
	}
	c := newCluster(t, 1, nil)
	etcdctl := func(args ...string) (string, error) {
		cmd := exec.Command("etcdctl", append([]string{"--endpoints", c.servers[0].ClientURL(), "--command-timeout", "5s"}, args...)...)
		cmd.Env = append(cmd.Environ(), "ETCDCTL_API=3")
		cmd.Stdin = strings.NewReader(strings.Repeat("x", 1<<20))
		out, err := cmd.CombinedOutput()
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !strings.HasPrefix(l, `{"level":`) { // etcdctl's own client log
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\n"), err
	}
	must := func(want string, args ...string) {
		t.Helper()
		out, err := etcdctl(args...)
		if err != nil || out != want {
			t.Fatalf("etcdctl %s: %q (%v), want %q", strings.Join(args, " "), out, err, want)
		}
	}
	must("", "alarm", "list")
	n := 0
	for ; ; n++ {
		if n == 40 {
			t.Fatal("40 puts of 1 MiB accepted under the default quota of 32 MiB")
		}
		out, err := etcdctl("put", "/big/"+strconv.Itoa(n)) // the value (1 MiB) is read from stdin
		if err == nil && out == "OK" {
			continue
		}
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || out != "Error: "+noSpace || n < 28 {
			t.Fatalf("etcdctl put %d: %q (%v), want OK until about the 32nd, then exit 1 with %q", n, out, err, noSpace)
		}
		break
	}
	alarm := "memberID:" + strconv.FormatUint(c.servers[0].node.id, 10) + " alarm:NOSPACE"
	must(alarm, "alarm", "list")
	if out, err := etcdctl("endpoint", "status"); err != nil || !strings.HasSuffix(out, ", "+alarm) {
		t.Fatalf("etcdctl endpoint status: %q (%v), want the alarm in its errors column", out, err)
	}
	must(strconv.Itoa(n), "del", "--prefix", "/big/")
	must(alarm, "alarm", "disarm")
	must("", "alarm", "list")
	must("OK", "put", "/after", "1")
}

// TestDefaultQuotaStopsGrowth: with the default quota (32 MiB), distinct
// 1 MB keys are refused with etcd's error once the state would pass it,
// and the NOSPACE alarm is listed; before, every put was kept in memory.
func TestDefaultQuotaStopsGrowth(t *testing.T) {
	c := newCluster(t, 1, nil)
	ctx := ctxT(t, 60*time.Second)
	cl := c.client()
	kv := pb.NewKVClient(cl.ActiveConnection())
	value := bytes.Repeat([]byte("v"), 1<<20)
	var err error
	n := 0
	for ; n < 40 && err == nil; n++ {
		_, err = kv.Put(ctx, &pb.PutRequest{Key: []byte("/k" + strconv.Itoa(n)), Value: value})
	}
	wantNoSpace(t, "put past the default quota", err)
	if n < 28 || n > 33 {
		t.Fatalf("refused at put %d, want about the 32nd (32 MiB)", n)
	}
	list, err := cl.AlarmList(ctx)
	if err != nil || len(list.Alarms) != 1 || list.Alarms[0].Alarm != pb.AlarmType_NOSPACE {
		t.Fatalf("alarm list: %v %v, want NOSPACE", list, err)
	}
}
