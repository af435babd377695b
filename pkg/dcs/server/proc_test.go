package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/dcs/mvcc"
)

// procCluster runs members as pgherd-dcs processes (bin/pgherd-dcs, which
// `make build` writes), so that a test can SIGKILL and SIGSTOP them. Each
// member keeps its ports and data directory across restarts.
type procCluster struct {
	t       *testing.T
	bin     string
	dir     string
	members []*procMember
}

type procMember struct {
	cfg    dcs.Config
	file   string // its configuration
	log    string // its stderr, appended across restarts
	cmd    *exec.Cmd
	done   chan struct{} // closed once the process has exited
	paused bool
	admin  *dcs.AdminClient
}

// daemonBin is the pgherd-dcs that make build wrote.
func daemonBin(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "..", "bin", dcs.DaemonName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run make build first", p)
	}
	return p
}

// newProcCluster starts n member processes: the first bootstraps, the
// others join through it; it returns once all are voters.
func newProcCluster(t *testing.T, n int, tune func(*dcs.Config)) *procCluster {
	t.Helper()
	c := &procCluster{t: t, bin: daemonBin(t), dir: t.TempDir()}
	t.Cleanup(c.killAll)
	for i := range n {
		cfg := dcs.Config{Name: fmt.Sprintf("m%d", i), DataDir: filepath.Join(c.dir, fmt.Sprintf("m%d", i)),
			ListenPeer: freePort(t), ListenClient: freePort(t), HeartbeatTimeout: testHeartbeat}
		if i > 0 {
			cfg.Join = []string{c.members[0].cfg.ListenPeer}
		}
		if tune != nil {
			tune(&cfg)
		}
		c.addMember(cfg)
		c.start(i)
		waitFor(t, 20*time.Second, cfg.Name+" to follow a leader", func() bool {
			mi, err := c.info(i)
			return err == nil && mi.Leader != ""
		})
	}
	c.waitVoters(n)
	return c
}

func (c *procCluster) addMember(cfg dcs.Config) {
	c.t.Helper()
	m := &procMember{cfg: cfg, file: filepath.Join(c.dir, cfg.Name+".yaml"), log: filepath.Join(c.dir, cfg.Name+".log")}
	c.writeConfig(m)
	ac, err := dcs.NewAdminClient(cfg.ListenPeer, cfg.PeerTLS)
	if err != nil {
		c.t.Fatal(err)
	}
	m.admin = ac
	c.members = append(c.members, m)
}

func (c *procCluster) writeConfig(m *procMember) {
	c.t.Helper()
	raw, err := yaml.Marshal(m.cfg)
	if err == nil {
		err = os.WriteFile(m.file, raw, 0o600)
	}
	if err != nil {
		c.t.Fatal(err)
	}
}

// launch starts member i's process and returns at once.
func (c *procCluster) launch(i int) {
	c.t.Helper()
	m := c.members[i]
	logf, err := os.OpenFile(m.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	m.cmd = exec.Command(c.bin, "--config", m.file)
	m.cmd.Stderr, m.cmd.Stdout = logf, logf
	if err := m.cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("start %s: %v", m.cfg.Name, err)
	}
	m.done, m.paused = make(chan struct{}), false
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		logf.Close()
		close(done)
	}(m.cmd, m.done)
}

// start starts member i and waits until its peer port answers.
func (c *procCluster) start(i int) {
	c.t.Helper()
	c.launch(i)
	m := c.members[i]
	waitFor(c.t, 20*time.Second, m.cfg.Name+" to answer on its peer port", func() bool {
		select {
		case <-m.done:
			c.t.Fatalf("%s exited at start:%s", m.cfg.Name, c.tail(i))
		default:
		}
		_, err := c.info(i)
		return err == nil
	})
}

// exited waits up to d for member i's process to end and returns its log.
func (c *procCluster) exited(i int, d time.Duration) (code int, log string) {
	c.t.Helper()
	m := c.members[i]
	select {
	case <-m.done:
	case <-time.After(d):
		c.t.Fatalf("%s still runs after %s", m.cfg.Name, d)
	}
	raw, _ := os.ReadFile(m.log)
	return m.cmd.ProcessState.ExitCode(), string(raw)
}

func (c *procCluster) running(i int) bool {
	m := c.members[i]
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

func (c *procCluster) signal(i int, sig syscall.Signal) {
	if c.running(i) {
		c.members[i].cmd.Process.Signal(sig)
	}
}

// kill SIGKILLs member i and waits until it is gone.
func (c *procCluster) kill(i int) {
	c.signal(i, syscall.SIGKILL)
	if c.members[i].cmd != nil {
		<-c.members[i].done
	}
}

// stop ends member i cleanly (SIGTERM), SIGKILL after 10 s.
func (c *procCluster) stop(i int) {
	m := c.members[i]
	if !c.running(i) {
		return
	}
	c.resume(i)
	c.signal(i, syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		c.t.Errorf("%s ignored SIGTERM for 10 s", m.cfg.Name)
		c.kill(i)
	}
}

func (c *procCluster) pause(i int) {
	c.signal(i, syscall.SIGSTOP)
	c.members[i].paused = true
}

func (c *procCluster) resume(i int) {
	if c.members[i].paused {
		c.signal(i, syscall.SIGCONT)
		c.members[i].paused = false
	}
}

func (c *procCluster) killAll() {
	for i, m := range c.members {
		c.kill(i)
		m.admin.Close()
	}
}

func (c *procCluster) info(i int) (dcs.MemberInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	return c.members[i].admin.Status(ctx)
}

// tail is the end of member i's log, for failure messages.
func (c *procCluster) tail(i int) string {
	raw, _ := os.ReadFile(c.members[i].log)
	s := string(raw)
	if j := strings.LastIndex(s, "panic: "); j >= 0 { // the cause, before the stack
		return lastLogLines(s[j:min(len(s), j+300)], 2) + lastLogLines(s, 6)
	}
	return lastLogLines(s, 8)
}

func lastLogLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n  " + strings.Join(lines, "\n  ")
}

// leader waits for a running, unpaused member to lead and returns it.
func (c *procCluster) leader() int {
	c.t.Helper()
	idx := -1
	waitFor(c.t, 20*time.Second, "a leader", func() bool {
		for i, m := range c.members {
			if !c.running(i) || m.paused {
				continue
			}
			if mi, err := c.info(i); err == nil && mi.RaftState == "leader" {
				idx = i
				return true
			}
		}
		return false
	})
	return idx
}

func (c *procCluster) waitVoters(n int) {
	c.t.Helper()
	waitFor(c.t, 30*time.Second, fmt.Sprintf("%d voters", n), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ms, err := c.members[c.leader()].admin.Members(ctx)
		if err != nil || len(ms) != n {
			return false
		}
		for _, m := range ms {
			if m.Suffrage != "voter" {
				return false
			}
		}
		return true
	})
}

// waitCaughtUp requires every member to be up and to have applied all that
// the leader had committed when the wait began, and returns that index: up
// to it, every member's log is the same.
func (c *procCluster) waitCaughtUp(d time.Duration) uint64 {
	c.t.Helper()
	for i := range c.members {
		if !c.running(i) {
			c.t.Fatalf("%s is not running:%s", c.members[i].cfg.Name, c.tail(i))
		}
	}
	mi, err := c.info(c.leader())
	if err != nil {
		c.t.Fatal(err)
	}
	for i, m := range c.members {
		waitFor(c.t, d, m.cfg.Name+" to catch up", func() bool {
			got, err := c.info(i)
			return err == nil && got.AppliedIndex >= mi.CommitIndex && got.Leader != ""
		})
	}
	return mi.CommitIndex
}

func (c *procCluster) endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, "http://"+m.cfg.ListenClient)
	}
	return eps
}

func (c *procCluster) client(eps ...string) *clientv3.Client {
	c.t.Helper()
	if len(eps) == 0 {
		eps = c.endpoints()
	}
	cl, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// durableState rebuilds a stopped member's state machine from what its
// data directory holds, as a restart would: the newest snapshot up to
// index last, then the log up to last. It returns the state and the
// snapshot's index.
func durableState(t *testing.T, dataDir string, last uint64) (*fsm, uint64) {
	t.Helper()
	f := newFSM(mvcc.DefaultHistoryLimit)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dataDir, 2, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	var from uint64 = 1
	var snapIndex uint64
	list, _ := snaps.List() // newest first
	for _, meta := range list {
		if meta.Index > last {
			continue
		}
		_, rc, err := snaps.Open(meta.ID)
		if err != nil {
			t.Fatalf("%s: open snapshot: %v", dataDir, err)
		}
		if err := f.Restore(rc); err != nil {
			t.Fatalf("%s: restore snapshot: %v", dataDir, err)
		}
		snapIndex, from = meta.Index, meta.Index+1
		break
	}
	logs, meta, err := openLogStore(filepath.Join(dataDir, dcs.WALDir), hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("%s: %v", dataDir, err)
	}
	defer func() { logs.Close(); meta.Close() }()
	for i := from; i <= last; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			t.Fatalf("%s: log entry %d: %v", dataDir, i, err)
		}
		f.Apply(&l)
	}
	return f, snapIndex
}

// allKVs lists every key with its value and revisions.
func allKVs(f *fsm) []string {
	r, err := f.store.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		return []string{err.Error()}
	}
	out := make([]string, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		out = append(out, fmt.Sprintf("%s=%s@%d/%d", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision))
	}
	return out
}
