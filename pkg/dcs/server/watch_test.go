package server

import (
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// watchScenario runs watch creations etcd refuses and a replay on one
// watch stream of cl, and renders each response with revisions relative
// to its first write, so that two stores' answers compare.
func watchScenario(t *testing.T, cl *clientv3.Client) []string {
	ctx := ctxT(t, 30*time.Second)
	stream, err := pb.NewWatchClient(cl.ActiveConnection()).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	base := int64(0)
	put := func(k, v string) {
		t.Helper()
		r, err := cl.Put(ctx, k, v)
		if err != nil {
			t.Fatal(err)
		}
		if base == 0 {
			base = r.Header.Revision
		}
	}
	var out []string
	recv := func() {
		t.Helper()
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, ev := range r.Events {
			keys = append(keys, fmt.Sprintf("%s@+%d", ev.Kv.Key, ev.Kv.ModRevision-base))
		}
		out = append(out, fmt.Sprintf("id=%d created=%v canceled=%v reason=%q events=%v header=+%d",
			r.WatchId, r.Created, r.Canceled, r.CancelReason, keys, r.Header.Revision-base))
	}
	create := func(cr *pb.WatchCreateRequest) {
		t.Helper()
		if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: cr}}); err != nil {
			t.Fatal(err)
		}
		recv()
	}
	put("/w/a", "0")
	create(&pb.WatchCreateRequest{Key: []byte("/w/a"), WatchId: 7})
	create(&pb.WatchCreateRequest{Key: []byte("/w/b"), WatchId: 7})               // duplicate ID
	create(&pb.WatchCreateRequest{Key: []byte("/w/z"), RangeEnd: []byte("/w/a")}) // empty range
	put("/w/b", "1")                                                              // no watcher of /w/b exists
	put("/w/a", "1")
	recv()
	put("/w/r", "1")
	put("/w/r", "2")
	put("/w/o", "x")
	put("/w/r", "3")
	put("/w/o", "y")
	create(&pb.WatchCreateRequest{Key: []byte("/w/r"), StartRevision: base + 3, WatchId: 8})
	recv() // the replay
	return out
}

// TestWatchCreationsAsEtcd: a second watcher with a watch_id in use and a
// watch on an empty range are refused as etcd refuses them (created and
// canceled at once with watch ID -1 and etcd's reason) and register
// nothing; a replay of past events is one message headed with the
// current revision. With etcd installed, its answers must be the same.
func TestWatchCreationsAsEtcd(t *testing.T) {
	c := newCluster(t, 1, nil)
	got := watchScenario(t, c.client())
	want := []string{
		`id=7 created=true canceled=false reason="" events=[] header=+0`,
		`id=-1 created=true canceled=true reason="mvcc: duplicate watch ID provided on the WatchStream" events=[] header=+0`,
		`id=-1 created=true canceled=true reason="mvcc: watcher range is empty" events=[] header=+0`,
		`id=7 created=false canceled=false reason="" events=[/w/a@+2] header=+2`,
		`id=8 created=true canceled=false reason="" events=[] header=+7`,
		`id=8 created=false canceled=false reason="" events=[/w/r@+3 /w/r@+4 /w/r@+6] header=+7`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("watch responses:\n%q\nwant\n%q", got, want)
	}
	e := startRealEtcd(t, 1)
	cl, err := clientv3.New(clientv3.Config{Endpoints: e.clientURLs, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if etcd := watchScenario(t, cl); fmt.Sprint(etcd) != fmt.Sprint(got) {
		t.Fatalf("watch responses differ from etcd's:\nours:\n%q\netcd:\n%q", got, etcd)
	}
}
