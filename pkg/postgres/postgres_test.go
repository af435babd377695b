package postgres

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgherd/pgherd/internal/testuser"
)

func TestReadPIDFile(t *testing.T) {
	dir := t.TempDir()
	// As PostgreSQL 15 writes it: PID, data directory, start time, port,
	// first socket directory, first listen address, shared memory key, status.
	pid := "4242\n/srv/pgsql/15/pg1/data\n1765000000\n5433\n/run/pgherd/15-pg1\nlocalhost\n  5433001    131072\nready   \n"
	if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(pid), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := ReadPIDFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := PIDFile{PID: 4242, DataDir: "/srv/pgsql/15/pg1/data", Port: 5433, Socket: "/run/pgherd/15-pg1", Listen: "localhost", Status: "ready"}
	if p != want {
		t.Errorf("got %+v, want %+v", p, want)
	}
	// A file cut short while the server starts.
	if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte("4242\n/srv\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err = ReadPIDFile(dir); err != nil || p != (PIDFile{PID: 4242, DataDir: "/srv"}) {
		t.Errorf("short file: %+v, %v", p, err)
	}
}

func TestCheckInstalledNotAVersion(t *testing.T) {
	err := CheckInstalled("/nonexistent/{version}/bin", "abc")
	if err == nil || err.Error() != `--version "abc" is not a PostgreSQL major version, and none is installed (nothing matches /nonexistent/{version}/bin): install postgresql-15` {
		t.Errorf("got %v", err)
	}
}

// TestRunningIsTheDataDirOwners: postmaster.pid belongs to the PostgreSQL
// account, which could name a process of root's there; pgherd (root) would
// then signal it when it stops the server. Only a process of the data
// directory's owner counts as its server.
func TestRunningIsTheDataDirOwners(t *testing.T) {
	_, uid, gid := testuser.Pgherd(t)
	dir := t.TempDir()
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	pidfile := fmt.Sprintf("%d\n%s\n1700000000\n5432\n/run/postgresql\nlocalhost\n  5432001  0\nready   \n", os.Getpid(), dir)
	if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(pidfile), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, ok := Running(dir); ok {
		t.Fatalf("a root process (PID %d) named in an account's postmaster.pid counts as its server", p.PID)
	}
	// The same PID in a directory of root's is the test's own process.
	if err := os.Chown(dir, 0, 0); err != nil {
		t.Fatal(err)
	}
	if p, ok := Running(dir); !ok || p.PID != os.Getpid() || p.Status != "ready" {
		t.Fatalf("Running: %+v %v", p, ok)
	}
}
