package safefs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestOpenRefusesLinksAndSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("kept\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenAppend(link, 0o640); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("OpenAppend through a link: %v", err)
	}
	if _, err := ReadFile(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("ReadFile through a link: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Without O_NONBLOCK this open would wait for a writer forever.
	if _, err := Open(fifo); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open of a FIFO: %v", err)
	}
	hard := filepath.Join(dir, "hard")
	if err := os.Link(target, hard); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenAppend(hard, 0o640); err == nil || !strings.Contains(err.Error(), "hard link") {
		t.Errorf("OpenAppend of a hard link: %v", err)
	}
	f, err := OpenAppend(filepath.Join(dir, "new.log"), 0o640)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if b, _ := os.ReadFile(target); string(b) != "kept\n" {
		t.Errorf("target changed: %q", b)
	}
}

func TestRemoveDirStaysInside(t *testing.T) {
	outside := t.TempDir()
	keep := filepath.Join(outside, "keep")
	if err := os.WriteFile(keep, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "victim")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, to := range map[string]string{"sub/out": outside, "abs": outside, "rel": "../../" + filepath.Base(outside)} {
		if err := os.Symlink(to, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	link := dir + ".link"
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	yes := func(*os.Root, uint32) error { return nil }
	if err := RemoveDir(link, yes); !errors.Is(err, ErrNotOurs) {
		t.Fatalf("RemoveDir of a link: %v", err)
	}
	no := errors.New("no")
	if err := RemoveDir(dir, func(*os.Root, uint32) error { return no }); !errors.Is(err, no) {
		t.Fatalf("a refusing check: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("a refused RemoveDir deleted: %v", err)
	}
	if err := RemoveDir(dir, yes); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("still there: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("a link inside was followed: %v", err)
	}
	if err := RemoveDir(dir, yes); err != nil {
		t.Fatalf("an absent directory: %v", err)
	}
}
