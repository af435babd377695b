package server

import (
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestWatchCreationsAsEtcd: a second watcher with a watch_id in use and a
// watch on an empty range are refused as etcd refuses them (created and
// canceled at once with watch ID -1 and etcd's reason) and register
// nothing; a replay of past events is one message headed with the
// current revision.
func TestWatchCreationsAsEtcd(t *testing.T) {
	c := newCluster(t, 1, nil)
	cl := c.client()
	ctx := ctxT(t, 30*time.Second)
	stream, err := pb.NewWatchClient(cl.ActiveConnection()).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	create := func(cr *pb.WatchCreateRequest) *pb.WatchResponse {
		t.Helper()
		if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: cr}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := create(&pb.WatchCreateRequest{Key: []byte("/a"), WatchId: 7}); !r.Created || r.Canceled || r.WatchId != 7 {
		t.Fatalf("first watch 7: %v", r)
	}
	for _, tc := range []struct {
		cr     *pb.WatchCreateRequest
		reason string
	}{
		{&pb.WatchCreateRequest{Key: []byte("/b"), WatchId: 7}, "mvcc: duplicate watch ID provided on the WatchStream"},
		{&pb.WatchCreateRequest{Key: []byte("/z"), RangeEnd: []byte("/a")}, "mvcc: watcher range is empty"},
	} {
		if r := create(tc.cr); !r.Created || !r.Canceled || r.WatchId != -1 || r.CancelReason != tc.reason {
			t.Fatalf("watch %v: %v, want refused with %q", tc.cr, r, tc.reason)
		}
	}
	// Only the first watcher of ID 7 exists: a put on /b sends nothing.
	if _, err := cl.Put(ctx, "/b", "1"); err != nil {
		t.Fatal(err)
	}
	put, err := cl.Put(ctx, "/a", "1")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.WatchId != 7 || len(r.Events) != 1 || string(r.Events[0].Kv.Key) != "/a" || r.Header.Revision != put.Header.Revision {
		t.Fatalf("after the refused duplicate: %v %v", r, err)
	}

	// A replay of three revisions: one message, headed with the current revision.
	first, _ := cl.Put(ctx, "/r", "1")
	cl.Put(ctx, "/r", "2")
	cl.Put(ctx, "/other", "x")
	last, _ := cl.Put(ctx, "/r", "3")
	cl.Put(ctx, "/other", "y")
	if r := create(&pb.WatchCreateRequest{Key: []byte("/r"), StartRevision: first.Header.Revision, WatchId: 8}); !r.Created || r.WatchId != 8 {
		t.Fatalf("replay watch: %v", r)
	}
	r, err := stream.Recv()
	if err != nil || r.WatchId != 8 || len(r.Events) != 3 || r.Header.Revision != last.Header.Revision+1 {
		t.Fatalf("replay: %v %v, want 3 events headed with revision %d", r, err, last.Header.Revision+1)
	}
}
