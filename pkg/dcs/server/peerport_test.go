package server

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// fakePeer listens like a member's peer port and runs serve on each RPC
// connection after its protocol byte; connections close when serve
// returns or the test ends.
func fakePeer(t *testing.T, serve func(c net.Conn, r *bufio.Reader, done <-chan struct{})) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(done); ln.Close(); wg.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				go func() { <-done; c.Close() }()
				r := bufio.NewReader(c)
				if _, err := r.ReadByte(); err == nil {
					serve(c, r, done)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestLostForwardIsUnavailable: a follower whose forwarded write loses
// its answer (the leader's connection cut after sending, or no answer in
// time) answers etcd's Unavailable errors, which etcd's clients retry,
// never Unknown with the raw network error.
func TestLostForwardIsUnavailable(t *testing.T) {
	n := &node{clients: map[string]*peerClient{}}
	cmd, _ := encodeMsg(opPut, &pb.PutRequest{Key: []byte("/k")})
	cut := fakePeer(t, func(_ net.Conn, r *bufio.Reader, _ <-chan struct{}) { dcs.ReadFrame(r, dcs.MaxRequestFrame) })
	silent := fakePeer(t, func(_ net.Conn, r *bufio.Reader, done <-chan struct{}) {
		dcs.ReadFrame(r, dcs.MaxRequestFrame)
		<-done
	})
	for _, tc := range []struct {
		addr string
		d    time.Duration
		want error
	}{
		{cut, 5 * time.Second, status.Error(codes.Unavailable, "etcdserver: leader changed")},
		{silent, 300 * time.Millisecond, status.Error(codes.Unavailable, "etcdserver: request timed out")},
	} {
		_, err := n.forward(ctxT(t, tc.d), tc.addr, cmd)
		if got := toGRPC(err); got == nil || got.Error() != tc.want.Error() || status.Code(got) != codes.Unavailable {
			t.Errorf("lost forward (%v) answered %v, want %v", err, got, tc.want)
		}
	}
}

// TestPeerPortBounds: an RPC connection idle for the idle timeout and one
// announcing a frame over the limit are closed without reading it, and a
// member handles at most maxConcurrentJoins joins at once; it keeps
// serving throughout.
func TestPeerPortBounds(t *testing.T) {
	old := peerIdleTimeout
	peerIdleTimeout = 300 * time.Millisecond
	t.Cleanup(func() { peerIdleTimeout = old })
	c := newCluster(t, 1, nil)
	addr := c.servers[0].PeerAddr()
	ctx := ctxT(t, 30*time.Second)

	closedByMember := func(c net.Conn) error {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Read(make([]byte, 1))
		if !errors.Is(err, io.EOF) {
			return fmt.Errorf("read: %v, want EOF from the member", err)
		}
		return nil
	}
	idle, err := dcs.DialPeer(ctx, addr, nil, dcs.ProtoRPC, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if err := closedByMember(idle); err != nil {
		t.Fatalf("idle connection: %v", err)
	}
	big, err := dcs.DialPeer(ctx, addr, nil, dcs.ProtoRPC, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	big.Write(binary.BigEndian.AppendUint32([]byte{byte(dcs.RPCForward)}, dcs.MaxRequestFrame+1))
	if err := closedByMember(big); err != nil {
		t.Fatalf("oversize frame: %v", err)
	}

	// Newcomers that accept a connection and never answer hold a join
	// each until the test ends.
	blackHole := fakePeer(t, func(_ net.Conn, _ *bufio.Reader, done <-chan struct{}) { <-done })
	join := func(name string) error {
		p, _ := json.Marshal(dcs.Member{Name: name, PeerAddr: blackHole})
		_, err := newPeerClient(addr, nil).call(ctxT(t, 20*time.Second), dcs.RPCJoin, p)
		return err
	}
	for i := range maxConcurrentJoins {
		go join(fmt.Sprint("slow", i))
	}
	waitFor(t, 10*time.Second, "joins in progress", func() bool { return len(c.servers[0].node.joins) == maxConcurrentJoins })
	wantErr(t, join("one-too-many"), "joins are already in progress")
	if _, err := c.client().Put(ctx, "/still", "serving"); err != nil {
		t.Fatal(err)
	}
}
