package mvcc

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestBackendRoundTrip writes a store half way through a random log as an
// etcd backend database, reads it back into a new store, and applies the
// rest of the log to both: every answer (revisions, historic reads,
// leases) must be the same, and so must the final state.
func TestBackendRoundTrip(t *testing.T) {
	c := newClock()
	ops := randomOps(7, 3000, false)
	a, b := New(Options{HistoryLimit: 100, Now: c.Now}), New(Options{HistoryLimit: 100, Now: c.Now})
	path := filepath.Join(t.TempDir(), "snap.db")
	for i, op := range ops {
		want := op.apply(a)
		if i == len(ops)/2 {
			snap, err := a.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if err := snap.WriteBackend(path); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("backend file: %v %v", fi, err)
			}
			read, err := ReadBackend(path)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := read.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			if err := b.Restore(&buf); err != nil {
				t.Fatal(err)
			}
			if got, want := allKeys(t, b), allKeys(t, a); got != want {
				t.Fatalf("restored from the backend:\n%s\nwant\n%s", got, want)
			}
		}
		if i > len(ops)/2 {
			if got := op.apply(b); got != want {
				t.Fatalf("op %d: store restored from the backend answered %s, want %s", i, got, want)
			}
		}
	}
	if got, want := allKeys(t, b), allKeys(t, a); got != want {
		t.Fatalf("final state:\n%s\nwant\n%s", got, want)
	}
}

func TestReadBackendRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text")
	os.WriteFile(text, bytes.Repeat([]byte("not a database\n"), 1000), 0o600)
	if _, err := ReadBackend(text); err == nil {
		t.Fatal("a text file was read as an etcd backend")
	}
}
