package postgres

import (
	"os"
	"path/filepath"
	"testing"
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
