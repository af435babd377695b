package postgres

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgherd/pgherd/internal/testuser"
)

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
