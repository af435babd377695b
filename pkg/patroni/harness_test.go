package patroni

// The test harness: one real etcd and one two-member Patroni cluster per test
// binary, started on first use and stopped by TestMain (by PID), also when
// tests fail. Patroni and PostgreSQL run as the unprivileged user pgherd when
// the tests run as root.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgherd/pgherd/internal/testuser"
	"github.com/pgherd/pgherd/pkg/logging"
)

const (
	testHost  = "127.0.1.1" // Patroni's validator refuses 127.0.0.1 in connect addresses
	pgBinDir  = "/usr/lib/postgresql/15/bin"
	etcdBin   = "/usr/bin/etcd"
	testScope = "pgherd-test"
)

var testTimings = Timings{TTL: 20, LoopWait: 2, RetryTimeout: 5}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	harness.stop()
	os.Exit(code)
}

type testMember struct {
	name, dir, yaml string
	cfg             *Config
	cmd             *exec.Cmd
	done            chan struct{}
	client          *Client
}

type testHarness struct {
	mu       sync.Mutex
	base     string // traversable by the system user
	cred     *syscall.Credential
	owner    *Owner
	etcd     *exec.Cmd
	etcdHost string
	creds    Credentials
	members  []*testMember

	etcdOnce, clusterOnce sync.Once
	etcdErr, clusterErr   error
	startLog              syncBuffer // what WaitStarted logged while the members started
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var harness = &testHarness{}

// needBinaries skips when this machine lacks the real components.
func needBinaries(t *testing.T) {
	t.Helper()
	for _, p := range []string{DefaultExe, etcdBin, filepath.Join(pgBinDir, "postgres")} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is not installed (apt install patroni etcd-server postgresql-15)", p)
		}
	}
}

// etcdEnv starts the shared etcd (once) and returns the harness.
func etcdEnv(t *testing.T) *testHarness {
	t.Helper()
	needBinaries(t)
	h := harness
	h.etcdOnce.Do(func() { h.etcdErr = h.startEtcd() })
	if h.etcdErr != nil {
		t.Fatalf("starting etcd: %v", h.etcdErr)
	}
	return h
}

// clusterEnv starts the shared two-member cluster (once) and waits until both
// members run and the replica streams.
func clusterEnv(t *testing.T) *testHarness {
	t.Helper()
	h := etcdEnv(t)
	h.clusterOnce.Do(func() { h.clusterErr = h.startCluster() })
	if h.clusterErr != nil {
		t.Fatalf("starting the Patroni cluster: %v\n%s", h.clusterErr, h.logs())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(h.logs())
		}
	})
	return h
}

func (h *testHarness) setup() error {
	if h.base != "" {
		return nil
	}
	base, err := os.MkdirTemp("/tmp", "pgherd-patroni-")
	if err != nil {
		return err
	}
	h.base = base
	if err := os.Chmod(base, 0o755); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		_, uid, gid, err := testuser.Lookup()
		if err != nil {
			return fmt.Errorf("tests run as root and need the system user %s: %w", testuser.Name, err)
		}
		h.cred = &syscall.Credential{Uid: uid, Gid: gid}
		h.owner = &Owner{UID: int(uid), GID: int(gid)}
	}
	h.creds, err = GenerateCredentials()
	return err
}

// mkdirOwned makes a 0700 directory owned by the system user.
func (h *testHarness) mkdirOwned(path string) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return err
	}
	if h.owner != nil {
		return os.Chown(path, h.owner.UID, h.owner.GID)
	}
	return nil
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (h *testHarness) startEtcd() error {
	if err := h.setup(); err != nil {
		return err
	}
	cport, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	pport, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	dir := filepath.Join(h.base, "etcd")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	curl := fmt.Sprintf("http://127.0.0.1:%d", cport)
	purl := fmt.Sprintf("http://127.0.0.1:%d", pport)
	out, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(etcdBin, "--name", "e1", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "e1="+purl, "--initial-cluster-state", "new")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	h.mu.Lock()
	h.etcd = cmd
	h.mu.Unlock()
	h.etcdHost = fmt.Sprintf("127.0.0.1:%d", cport)
	return poll(30*time.Second, func() error {
		resp, err := http.Get(curl + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("etcd /health answered %d", resp.StatusCode)
		}
		return nil
	})
}

// memberConfig builds a member's config on fresh free ports, writes it and
// prepares its directories; it does not start it.
func (h *testHarness) memberConfig(name string) (*testMember, error) {
	pgPort, err := freePort(testHost)
	if err != nil {
		return nil, err
	}
	apiPort, err := freePort(testHost)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(h.base, name)
	for _, d := range []string{dir, filepath.Join(dir, "run"), filepath.Join(dir, "log")} {
		if err := h.mkdirOwned(d); err != nil {
			return nil, err
		}
	}
	cfg := New(Spec{
		Cluster: testScope, Node: name,
		RestAPIConnect: net.JoinHostPort(testHost, strconv.Itoa(apiPort)),
		PGConnectHost:  testHost, PGPort: pgPort,
		DataDir: filepath.Join(dir, "data"), BinDir: pgBinDir,
		SocketDir: filepath.Join(dir, "run"), PgPass: filepath.Join(dir, "pgpass"), LogDir: filepath.Join(dir, "log"),
		Etcd:          Etcd3{Hosts: []string{h.etcdHost}},
		Timings:       testTimings,
		Parameters:    map[string]string{"shared_buffers": "16MB", "max_connections": "50"},
		Credentials:   h.creds,
		DataChecksums: true,
	})
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &testMember{name: name, dir: dir, yaml: filepath.Join(dir, "patroni.yaml"), cfg: cfg}
	if err := cfg.WriteFile(m.yaml, h.owner); err != nil {
		return nil, err
	}
	if m.client, err = ClientFor(cfg); err != nil {
		return nil, err
	}
	return m, nil
}

// start runs Patroni as the system user, in its own session, with the clean
// environment Environ gives.
func (h *testHarness) start(m *testMember) error {
	out, err := os.OpenFile(filepath.Join(m.dir, "patroni.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	args := Command(DefaultExe, m.yaml)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = Environ(m.dir)
	cmd.Dir = m.dir
	cmd.Stdout, cmd.Stderr = out, out
	// Pdeathsig: if the test binary dies, Patroni gets SIGTERM and stops its PostgreSQL.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: h.cred, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return err
	}
	m.cmd, m.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(m.done) }()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.member(m.name) == nil {
		h.members = append(h.members, m)
	}
	return nil
}

func (h *testHarness) startCluster() error {
	var ms []*testMember
	for _, name := range []string{"pg1", "pg2"} {
		m, err := h.memberConfig(name)
		if err != nil {
			return err
		}
		ms = append(ms, m)
	}
	for _, m := range ms {
		if err := h.start(m); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	ctx = logging.With(ctx, logging.New(&h.startLog, slog.LevelDebug))
	errs := make(chan error, len(ms))
	for _, m := range ms {
		go func(m *testMember) { errs <- WaitStarted(ctx, m.client, m.name, false, []string{m.cfg.Log.File()}) }(m)
	}
	for range ms {
		if err := <-errs; err != nil {
			return err
		}
	}
	return h.waitHealthy(ctx)
}

// waitHealthy waits until both members run, one leads and the other streams.
func (h *testHarness) waitHealthy(ctx context.Context) error {
	var last error
	for {
		if last = h.healthy(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not healthy: %w", last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (h *testHarness) healthy(ctx context.Context) error {
	cl, err := h.members[0].client.Cluster(ctx)
	if err != nil {
		return err
	}
	if len(cl.Members) != 2 {
		return fmt.Errorf("%d members", len(cl.Members))
	}
	for _, m := range cl.Members {
		if m.State != "running" {
			return fmt.Errorf("member %s is %s", m.Name, m.State)
		}
	}
	leader, ok := cl.Leader()
	if !ok {
		return errors.New("no leader")
	}
	st, err := h.member(leader.Name).client.Patroni(ctx)
	if err != nil {
		return err
	}
	if len(st.Replication) != 1 || st.Replication[0].State != "streaming" {
		return fmt.Errorf("leader %s has replication %+v", leader.Name, st.Replication)
	}
	return nil
}

func (h *testHarness) member(name string) *testMember {
	for _, m := range h.members {
		if m.name == name {
			return m
		}
	}
	return nil
}

// stop stops every member (SIGTERM, then SIGKILL of Patroni and of a
// postmaster left in the member's data directory), then etcd, then removes
// the files.
func (h *testHarness) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range h.members {
		wg.Add(1)
		go func(m *testMember) {
			defer wg.Done()
			m.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-m.done:
			case <-time.After(30 * time.Second):
				m.cmd.Process.Kill()
				<-m.done
			}
			if pid := postmasterPID(m.cfg.PostgreSQL.DataDir); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}(m)
	}
	wg.Wait()
	if h.etcd != nil {
		h.etcd.Process.Kill()
		h.etcd.Wait()
	}
	if h.base != "" && os.Getenv("PGHERD_KEEP_TEST_DIR") == "" {
		os.RemoveAll(h.base)
	}
}

// postmasterPID is the PID in dataDir/postmaster.pid if that process lives.
func postmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// logs returns the tail of every member's Patroni log, for failed tests.
func (h *testHarness) logs() string {
	var b strings.Builder
	for _, m := range h.members {
		for _, f := range []string{m.cfg.Log.File(), filepath.Join(m.dir, "patroni.out")} {
			data, _ := os.ReadFile(f)
			lines := strings.Split(string(data), "\n")
			if len(lines) > 30 {
				lines = lines[len(lines)-30:]
			}
			fmt.Fprintf(&b, "==> %s <==\n%s\n", f, strings.Join(lines, "\n"))
		}
	}
	return b.String()
}

// poll calls f until it returns nil or timeout passes.
func poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
