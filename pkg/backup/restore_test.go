package backup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgherd/pgherd/pkg/run"
)

func mkdir(t *testing.T, p, marker string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, marker), nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

func has(p, marker string) bool {
	_, err := os.Stat(filepath.Join(p, marker))
	return err == nil
}

// swap puts the fresh directories in place and the current ones aside;
// unswap puts the previous ones back; a swap that cannot finish undoes
// its renames, so the instance's directories are never left half-moved.
func TestSwap(t *testing.T) {
	root := t.TempDir()
	e := &Env{Runner: run.Exec{}}
	d := dirs{data: filepath.Join(root, "data"), wal: filepath.Join(root, "wal"), fs: e.fsAs(context.Background())}
	mkdir(t, d.data, "old")
	mkdir(t, d.wal, "old")
	mkdir(t, d.fresh(d.data), "new")
	mkdir(t, d.fresh(d.wal), "new")
	if err := d.swap(); err != nil {
		t.Fatal(err)
	}
	if !has(d.data, "new") || !has(d.wal, "new") || !has(d.previous(d.data), "old") || !has(d.previous(d.wal), "old") {
		t.Fatal("swap did not move the directories")
	}
	if err := d.unswap(); err != nil {
		t.Fatal(err)
	}
	if !has(d.data, "old") || !has(d.wal, "old") || has(d.previous(d.data), "old") {
		t.Fatal("unswap did not put the previous directories back")
	}

	// No fresh WAL directory: the last rename fails after the data
	// directories were swapped, and they must come back.
	mkdir(t, d.fresh(d.data), "new")
	if err := d.swap(); err == nil {
		t.Fatal("swap without a fresh WAL directory succeeded")
	}
	if !has(d.data, "old") || !has(d.wal, "old") || !has(d.fresh(d.data), "new") {
		t.Fatal("a failed swap left the directories moved")
	}
}

func TestCheckSpace(t *testing.T) {
	root := t.TempDir()
	i := Instance{ID: "15/pg1", DataDir: filepath.Join(root, "data"), WALDir: filepath.Join(root, "wal")}
	if err := CheckSpace(i, 1<<20); err != nil {
		t.Errorf("1 MiB: %v", err)
	}
	if err := CheckSpace(i, 1<<60); err == nil || !strings.Contains(err.Error(), "restore of 15/pg1 needs 1024.0PB free in "+root) {
		t.Errorf("an exabyte: %v", err)
	}
}

// A Patroni member's WAL is in its data directory: only that moves.
func TestSwapWALInside(t *testing.T) {
	root := t.TempDir()
	e := &Env{Runner: run.Exec{}}
	d := dirs{data: filepath.Join(root, "data"), fs: e.fsAs(context.Background())}
	mkdir(t, d.data, "old")
	mkdir(t, d.fresh(d.data), "new")
	if err := d.swap(); err != nil {
		t.Fatal(err)
	}
	if !has(d.data, "new") || !has(d.previous(d.data), "old") {
		t.Fatal("swap did not move the data directory")
	}
	if err := d.unswap(); err != nil {
		t.Fatal(err)
	}
	if !has(d.data, "old") || has(d.previous(d.data), "old") {
		t.Fatal("unswap did not put the previous data directory back")
	}
}
