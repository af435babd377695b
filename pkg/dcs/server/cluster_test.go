package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/logging"
)

// testCluster runs members in-process on 127.0.0.1 with fixed ports after
// their first start, so that a member can be stopped and started again.
type testCluster struct {
	t       *testing.T
	cfgs    []dcs.Config
	servers []*Server
}

const testHeartbeat = 500 * time.Millisecond

func memberConfig(t *testing.T, name string) dcs.Config {
	return dcs.Config{Name: name, DataDir: filepath.Join(t.TempDir(), name), ListenPeer: "127.0.0.1:0",
		ListenClient: "127.0.0.1:0", HeartbeatTimeout: testHeartbeat}
}

// newCluster starts n members: the first bootstraps, the others join
// through it, and it waits until all are voters.
func newCluster(t *testing.T, n int, tune func(*dcs.Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	t.Cleanup(c.stopAll)
	for i := range n {
		cfg := memberConfig(t, fmt.Sprintf("m%d", i))
		if i > 0 {
			cfg.Join = []string{c.servers[0].PeerAddr()}
		}
		if tune != nil {
			tune(&cfg)
		}
		c.add(cfg)
	}
	c.waitVoters(n)
	// As pgherd's set-up does (Local.Setup waits for it), a cluster is
	// ready once every member knows its cluster ID: until the leader's
	// first opClusterInit is applied, headers carry no cluster_id.
	waitFor(t, 10*time.Second, "the cluster ID on every member", func() bool {
		for _, s := range c.servers {
			if s.node.fsm.cluster() == 0 {
				return false
			}
		}
		return true
	})
	return c
}

// testCtx carries a logger to stderr when PGHERD_TEST_LOG is set.
func testCtx() context.Context {
	if os.Getenv("PGHERD_TEST_LOG") == "" {
		return context.Background()
	}
	return logging.With(context.Background(), logging.New(os.Stderr, slog.LevelInfo))
}

func (c *testCluster) add(cfg dcs.Config) *Server {
	c.t.Helper()
	s, err := Start(testCtx(), cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", cfg.Name, err)
	}
	// Pin the bound ports for restarts; a joined member must not join again.
	cfg.ListenPeer, cfg.ListenClient = s.PeerAddr(), hostPort(s.ClientURL())
	cfg.Join = nil
	c.cfgs = append(c.cfgs, cfg)
	c.servers = append(c.servers, s)
	return s
}

func hostPort(url string) string {
	for _, p := range []string{"http://", "https://"} {
		if len(url) > len(p) && url[:len(p)] == p {
			return url[len(p):]
		}
	}
	return url
}

func (c *testCluster) stop(i int) {
	if c.servers[i] != nil {
		c.servers[i].Close()
		c.servers[i] = nil
	}
}

func (c *testCluster) restart(i int) {
	c.t.Helper()
	s, err := Start(testCtx(), c.cfgs[i])
	if err != nil {
		c.t.Fatalf("restart %s: %v", c.cfgs[i].Name, err)
	}
	c.servers[i] = s
}

func (c *testCluster) stopAll() {
	for i := range c.servers {
		c.stop(i)
	}
}

// leader waits for a leader among the running members and returns its index.
func (c *testCluster) leader() int {
	c.t.Helper()
	var idx int
	waitFor(c.t, 10*time.Second, "a leader", func() bool {
		for i, s := range c.servers {
			if s != nil && s.node.isLeader() {
				idx = i
				return true
			}
		}
		return false
	})
	return idx
}

func (c *testCluster) waitVoters(n int) {
	c.t.Helper()
	waitFor(c.t, 20*time.Second, fmt.Sprintf("%d voters with metadata", n), func() bool {
		s := c.servers[c.leader()]
		ms, err := s.node.members(context.Background())
		if err != nil || len(ms) != n {
			return false
		}
		for _, m := range ms {
			if m.Suffrage != "voter" || m.ClientURL == "" {
				return false
			}
		}
		return true
	})
}

func (c *testCluster) endpoints() []string {
	var eps []string
	for _, s := range c.servers {
		if s != nil {
			eps = append(eps, s.ClientURL())
		}
	}
	return eps
}

func (c *testCluster) client(eps ...string) *clientv3.Client {
	c.t.Helper()
	if len(eps) == 0 {
		eps = c.endpoints()
	}
	cl, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func rangeReq(key string) *pb.RangeRequest { return &pb.RangeRequest{Key: []byte(key)} }

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
