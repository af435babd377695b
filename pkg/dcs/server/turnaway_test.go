package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/logging"
)

// TestMemberWithoutLeaderTurnsHTTPClientsAway cuts one member's peer port
// off (every member reaches the others' peer ports through a proxy) while
// its client port answers. Through the JSON gateway, as Patroni asks, a
// serializable read first gets etcd's 503 "no leader"; once the member has
// known no leader for an election timeout, the connection ends without an
// answer, which makes Patroni's client try its next endpoint. What needs
// no leader still answers, gRPC keeps its "no leader", and once the link
// is back the member answers again; it logs each switch once.
func TestMemberWithoutLeaderTurnsHTTPClientsAway(t *testing.T) {
	logFile, err := os.Create(filepath.Join(t.TempDir(), "members.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	logs := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
	ctx := logging.With(context.Background(), logging.New(logFile, slog.LevelInfo))
	c := &testCluster{t: t}
	t.Cleanup(c.stopAll)
	var proxies []*peerProxy
	for i := range 3 {
		cfg := memberConfig(t, fmt.Sprintf("m%d", i))
		cfg.ListenPeer = freePort(t)
		p := newPeerProxy(t, cfg.ListenPeer)
		proxies = append(proxies, p)
		cfg.AdvertisePeer = p.addr()
		if i > 0 {
			cfg.Join = []string{proxies[0].addr()}
		}
		s, err := Start(ctx, cfg)
		if err != nil {
			t.Fatalf("start %s: %v", cfg.Name, err)
		}
		c.cfgs, c.servers = append(c.cfgs, cfg), append(c.servers, s)
	}
	c.waitVoters(3)
	x := (c.leader() + 1) % 3
	name := c.servers[x].Name()
	cl := c.client(c.servers[x].ClientURL())
	cctx := ctxT(t, time.Minute)
	if _, err := cl.Put(cctx, "/leader", "n1"); err != nil {
		t.Fatal(err)
	}

	base := c.servers[x].ClientURL()
	read := func() (int, string, error) {
		return post(base+"/v3/kv/range", `{"key":"L2xlYWRlcg==","serializable":true}`)
	}
	waitFor(t, 10*time.Second, "a serializable read on "+name, func() bool {
		code, _, err := read()
		return err == nil && code == http.StatusOK
	})

	before := len(logs())
	proxies[x].cut(true)
	var first503, firstAway time.Time
	waitFor(t, 20*time.Second, name+" to close the connection of a read", func() bool {
		code, body, err := read()
		switch {
		case err != nil:
			firstAway = time.Now()
			return true
		case code == http.StatusServiceUnavailable && strings.Contains(body, rpctypes.ErrNoLeader.Error()) && first503.IsZero():
			first503 = time.Now()
		case code != http.StatusOK && code != http.StatusServiceUnavailable:
			t.Fatalf("a read on %s without a leader: %d %s", name, code, body)
		}
		return false
	})
	if first503.IsZero() {
		t.Fatal("the connection was closed before any read was answered 503 no leader: there was no grace")
	}
	if d := firstAway.Sub(first503); d < testHeartbeat/2 {
		t.Errorf("connections closed %s after the first 503, want about an election timeout (%s)", d, testHeartbeat)
	}
	for _, path := range []string{"/v3/kv/put", "/v3/lease/grant", "/v3/lease/keepalive", "/v3/kv/txn", "/v3/watch"} {
		if code, body, err := post(base+path, `{}`); err == nil {
			t.Errorf("%s on %s without a leader was answered: %d %s", path, name, code, body)
		}
	}
	for _, path := range []string{"/version", "/v3/maintenance/status", "/v3/cluster/member/list"} {
		if code, body, err := post(base+path, `{}`); err != nil || code != http.StatusOK {
			t.Errorf("%s on %s without a leader: %d %s %v", path, name, code, body, err)
		}
	}
	// gRPC, without clientv3's retries (which would go elsewhere).
	conn, err := grpc.NewClient(hostPort(base), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = pb.NewKVClient(conn).Range(cctx, &pb.RangeRequest{Key: []byte("/leader"), Serializable: true})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), rpctypes.ErrNoLeader.Error()) {
		t.Errorf("a gRPC read on %s without a leader: %v, want Unavailable %q", name, err, rpctypes.ErrNoLeader)
	}

	proxies[x].cut(false)
	waitFor(t, 20*time.Second, name+" to answer reads again", func() bool {
		code, _, err := read()
		return err == nil && code == http.StatusOK
	})
	// Each switch is logged once by the member cut off, from the cut on.
	switches := func() (away, back int) {
		for _, l := range strings.Split(logs()[before:], "\n") {
			if !strings.Contains(l, "member="+name) {
				continue
			}
			if strings.Contains(l, "closing the HTTP connections") {
				away++
			}
			if strings.Contains(l, "in contact with a leader again") {
				back++
			}
		}
		return away, back
	}
	waitFor(t, 5*time.Second, name+" to log that it answers again", func() bool {
		_, back := switches()
		return back > 0
	})
	if away, back := switches(); away != 1 || back != 1 {
		t.Errorf("%s logged turning clients away %d times and answering again %d times, want once each:\n%s", name, away, back, logs())
	}
}

// post sends body to url on a connection of its own (HTTP/1.1) and returns
// the status and body, or the transport error.
func post(url, body string) (int, string, error) {
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// peerProxy forwards connections to a member's peer port; cut(true)
// closes every connection it carries and every new one until cut(false).
type peerProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
}

func newPeerProxy(t *testing.T, target string) *peerProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peerProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() {
		ln.Close()
		p.cut(true)
	})
	go p.serve()
	return p
}

func (p *peerProxy) addr() string { return p.ln.Addr().String() }

func (p *peerProxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
			delete(p.conns, c)
		}
	}
}

// track registers c, or closes it and reports false while cut.
func (p *peerProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *peerProxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			if !p.track(in) {
				return
			}
			out, err := net.Dial("tcp", p.target)
			if err != nil {
				in.Close()
				return
			}
			if !p.track(out) {
				in.Close()
				return
			}
			go func() { io.Copy(out, in); out.Close() }()
			io.Copy(in, out)
			in.Close()
		}()
	}
}

// TestIsolated: a member without a leader is cut off when another voter
// hears a leader or when the leaderless voters it reaches are no quorum;
// a quorum of leaderless voters that answer is an election.
func TestIsolated(t *testing.T) {
	ago := func(s float64) *float64 { return &s }
	follower := func(leader string, last *float64) dcs.MemberInfo {
		return dcs.MemberInfo{RaftState: "follower", Leader: leader, LastContactS: last}
	}
	candidate := dcs.MemberInfo{RaftState: "candidate"}
	for _, tc := range []struct {
		what    string
		voters  int
		self    bool
		answers []dcs.MemberInfo
		want    bool
	}{
		{"alone of three", 3, true, nil, true},
		{"a leader answers", 3, true, []dcs.MemberInfo{{RaftState: "leader"}}, true},
		{"a follower in contact", 3, true, []dcs.MemberInfo{follower("m0", ago(0.1))}, true},
		{"a follower out of contact too", 3, true, []dcs.MemberInfo{follower("m0", ago(1.5))}, false},
		{"electing with one other of three", 3, true, []dcs.MemberInfo{candidate}, false},
		{"two of five", 5, true, []dcs.MemberInfo{candidate}, true},
		{"three of five", 5, true, []dcs.MemberInfo{candidate, follower("", nil)}, false},
		{"a nonvoter with one of three", 3, false, []dcs.MemberInfo{candidate}, true},
		{"a member shutting down", 3, true, []dcs.MemberInfo{{RaftState: "unknown"}}, true},
		{"one voter: itself", 1, true, nil, false},
	} {
		if got := isolated(tc.voters, tc.self, tc.answers, time.Second); got != tc.want {
			t.Errorf("%s: isolated %v, want %v", tc.what, got, tc.want)
		}
	}
}

// TestStreamErrorAsEtcd34: the error that ends a gateway stream has etcd
// 3.4's shape, from which Patroni reads the gRPC code (Unavailable, which
// it retries); any other shape is an Unknown error to it.
func TestStreamErrorAsEtcd34(t *testing.T) {
	m := compactJSON{&runtime.JSONPb{}}
	b, err := m.Marshal(map[string]proto.Message{"error": status.New(codes.Unavailable, "etcdserver: leader changed").Proto()})
	want := `{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: leader changed","http_status":"Service Unavailable"}}`
	if err != nil || string(b) != want {
		t.Errorf("stream error: %s %v, want %s", b, err, want)
	}
}
