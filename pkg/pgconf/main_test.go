package pgconf

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgherd/pgherd/internal/testuser"
	"github.com/pgherd/pgherd/pkg/run"
)

// One real PostgreSQL 15 serves every test of the package; it starts on
// first use and TestMain stops it. Tests that change the configuration put
// the files back (and reload, or restart) in their cleanup.

const pgBin = "/usr/lib/postgresql/15/bin"

type testServer struct {
	dir, data string
	port      int
	runner    run.Runner
	pid       int
}

var shared struct {
	once sync.Once
	srv  *testServer
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.stop()
	}
	os.Exit(code)
}

// server returns the shared server, starting it if needed.
func server(t *testing.T) *testServer {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no PostgreSQL server")
	}
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		t.Skip("PostgreSQL 15 is not installed")
	}
	shared.once.Do(func() { shared.srv, shared.err = startServer() })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv
}

func startServer() (*testServer, error) {
	_, uid, gid, err := testuser.Lookup()
	if err != nil {
		return nil, fmt.Errorf("the tests run PostgreSQL as user %s: %w", testuser.Name, err)
	}
	dir, err := os.MkdirTemp("/tmp", "pgconf-test-")
	if err != nil {
		return nil, err
	}
	s := &testServer{dir: dir, data: filepath.Join(dir, "data"), port: freePort(),
		runner: run.Exec{Cred: &syscall.Credential{Uid: uid, Gid: gid}}}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		return nil, err
	}
	ctx := context.Background()
	if _, err := s.runner.Run(ctx, run.Cmd{Args: []string{pgBin + "/initdb", "-D", s.data,
		"-A", "trust", "-U", "postgres", "--no-sync", "--no-instructions"}}); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// Options on the command line (remembered in postmaster.opts for
	// restarts) so that the files under test hold only what tests write.
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses= -c fsync=off -c shared_preload_libraries=pg_stat_statements", s.port, dir)
	if _, err := s.runner.Run(ctx, run.Cmd{Args: []string{pgBin + "/pg_ctl", "-D", s.data,
		"-l", filepath.Join(dir, "log"), "-w", "-t", "60", "-o", opts, "start"}}); err != nil {
		s.stop()
		return nil, err
	}
	return s, s.readPid()
}

func (s *testServer) readPid() error {
	b, err := os.ReadFile(filepath.Join(s.data, "postmaster.pid"))
	if err != nil {
		return err
	}
	s.pid, err = strconv.Atoi(string(bytes.SplitN(b, []byte("\n"), 2)[0]))
	return err
}

func (s *testServer) stop() {
	_, _ = s.runner.Run(context.Background(), run.Cmd{Args: []string{pgBin + "/pg_ctl", "-D", s.data, "-m", "immediate", "stop"}})
	if s.pid > 0 {
		_ = syscall.Kill(s.pid, syscall.SIGKILL) // in case pg_ctl could not
	}
	os.RemoveAll(s.dir)
}

func (s *testServer) restart(t *testing.T) {
	t.Helper()
	// -l again: without it the new postmaster would keep our pipes open.
	if _, err := s.runner.Run(context.Background(), run.Cmd{Args: []string{pgBin + "/pg_ctl", "-D", s.data,
		"-l", filepath.Join(s.dir, "log"), "-w", "-t", "60", "-m", "fast", "restart"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.readPid(); err != nil {
		t.Fatal(err)
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 54321
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *testServer) connect(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", s.dir, s.port))
}

func (s *testServer) conf() string { return filepath.Join(s.data, "postgresql.conf") }

// target returns the shared server as a Target and registers a cleanup
// that restores both configuration files, removes files the test added in
// the data directory's conf.d, reloads, and restarts if a restart is pending.
func (s *testServer) target(t *testing.T) Target {
	t.Helper()
	files := map[string][]byte{}
	for _, p := range []string{s.conf(), filepath.Join(s.data, AutoConfName)} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[p] = b
	}
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := s.connect(ctx)
		if err != nil {
			t.Errorf("server down after the test: %v", err)
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "ALTER SYSTEM RESET ALL")
		for p, b := range files {
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Error(err)
			}
		}
		os.RemoveAll(filepath.Join(s.data, "conf.d"))
		tg := Target{Name: "15/test", Connect: s.connect}
		if err := reloadAndWait(ctx, tg, conn); err != nil {
			t.Error(err)
		}
		var pending bool
		if err := conn.QueryRow(ctx, "SELECT coalesce(bool_or(pending_restart), false) FROM pg_settings").Scan(&pending); err != nil {
			t.Error(err)
		}
		if pending {
			s.restart(t)
		}
	})
	return Target{Name: "15/test", ConfigFile: s.conf(), DataDir: s.data, BinDir: pgBin,
		Running: true, Connect: s.connect, Runner: s.runner}
}

// show reads current_setting(name) through a new session.
func (s *testServer) show(t *testing.T, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := s.connect(ctx)
	if err != nil {
		t.Fatalf("server not reachable: %v", err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// exec runs SQL on the server.
func (s *testServer) exec(t *testing.T, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := s.connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}
