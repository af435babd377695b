package service

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgherd/pgherd/internal/testuser"
	"github.com/pgherd/pgherd/pkg/run"
)

const pgBin = "/usr/lib/postgresql/15/bin"

// testUser is the unprivileged user PostgreSQL runs as in tests: root starts
// it through the manager, which switches to that user.
func testUser(t *testing.T) *User {
	t.Helper()
	if _, err := os.Stat(pgBin + "/postgres"); err != nil {
		t.Skip("PostgreSQL 15 is not installed (Debian package postgresql-15)")
	}
	name, uid, gid := testuser.Pgherd(t)
	return &User{Name: name, UID: uid, GID: gid}
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

// TestProcessPostgres runs a real postmaster as user pgherd through the
// process manager: start, readiness, reload, fast shutdown on SIGINT.
func TestProcessPostgres(t *testing.T) {
	ctx := context.Background()
	u := testUser(t)
	dir, data, sock := initdb(t, u)
	port := strconv.Itoa(freePort(t))
	m := NewProcess(Config{RunDir: filepath.Join(dir, "run")})
	s := Service{
		Kind: KindPostgreSQL, Instance: "15-svc", User: u, StopSignal: syscall.SIGINT,
		Exec:    []string{pgBin + "/postgres", "-D", data, "-p", port, "-k", sock, "-c", "listen_addresses="},
		LogFile: filepath.Join(dir, "log", "postgresql.log"),
	}
	if err := m.Install(ctx, s); err != nil {
		t.Fatal(err)
	}
	killAtEnd(t, m, s)
	if err := m.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "PostgreSQL did not accept connections", func() bool {
		return exec.Command(pgBin+"/pg_isready", "-q", "-h", sock, "-p", port).Run() == nil
	})
	st, err := m.Status(ctx, s)
	if err != nil || !st.Running {
		t.Fatalf("Status of a running postmaster: %+v, %v", st, err)
	}
	pm, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil || strings.SplitN(string(pm), "\n", 2)[0] != strconv.Itoa(st.PID) {
		t.Errorf("pidfile PID %d is not the postmaster's (postmaster.pid: %q, %v)", st.PID, pm, err)
	}
	if uid := procStatusUID(t, st.PID); uid != strconv.Itoa(int(u.UID)) {
		t.Errorf("postmaster runs as uid %s, want %d", uid, u.UID)
	}
	for _, p := range []string{s.LogFile, filepath.Dir(s.LogFile)} {
		if fi, err := os.Stat(p); err != nil || fi.Sys().(*syscall.Stat_t).Uid != u.UID {
			t.Errorf("%s not owned by %s: %v", p, u.Name, err)
		}
	}

	if err := m.Reload(ctx, s); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "no reload in the log", func() bool { return logHas(s.LogFile, "received SIGHUP, reloading configuration files") })

	if err := m.Stop(ctx, s); err != nil {
		t.Fatal(err)
	}
	if !logHas(s.LogFile, "received fast shutdown request") || !logHas(s.LogFile, "database system is shut down") {
		t.Errorf("no fast shutdown in the log:\n%s", readLog(s.LogFile))
	}
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); !os.IsNotExist(err) {
		t.Errorf("postmaster.pid still there after Stop: %v", err)
	}
}

// initdb makes a throwaway data directory owned by u, and a socket
// directory, in a directory u can traverse.
func initdb(t *testing.T, u *User) (dir, data, sock string) {
	t.Helper()
	dir = sharedDir(t)
	data, sock = filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	for _, d := range []string{data, sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, int(u.UID), int(u.GID)); err != nil {
			t.Fatal(err)
		}
	}
	as := run.Exec{Cred: &syscall.Credential{Uid: u.UID, Gid: u.GID}}
	if _, err := as.Run(context.Background(), run.Cmd{Args: []string{pgBin + "/initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"}, Dir: "/"}); err != nil {
		t.Fatal(err)
	}
	return dir, data, sock
}

func procStatusUID(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			return f[1]
		}
	}
	return ""
}

func logHas(path, s string) bool { return strings.Contains(readLog(path), s) }

func readLog(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
