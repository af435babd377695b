package safefs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgherd/pgherd/internal/testuser"
)

func TestReadOwnedRefuses(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "shadow")
	if err := os.WriteFile(secret, []byte("root's\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var me Owner
	if text, err := ReadOwned(filepath.Join(dir, "absent"), me); text != "" || err != nil {
		t.Errorf("a missing file: %q, %v", text, err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(dir, "hard")
	if err := os.Link(secret, hard); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{link: "symbolic link", hard: "hard link", fifo: "not a regular file"} {
		if text, err := ReadOwned(path, me); err == nil || !strings.Contains(err.Error(), want) || text != "" {
			t.Errorf("ReadOwned(%s) = %q, %v; want an error saying %q", filepath.Base(path), text, err, want)
		}
	}
	os.Remove(hard)
	if text, err := ReadOwned(secret, me); text != "root's\n" || err != nil {
		t.Errorf("a plain file: %q, %v", text, err)
	}

	name, uid, gid := testuser.Pgherd(t)
	owner := Owner{Name: name, UID: uid, GID: gid, Chown: true}
	if _, err := ReadOwned(secret, owner); err == nil || !strings.Contains(err.Error(), "not to "+name) {
		t.Errorf("root's file read as %s's: %v", name, err)
	}
	if err := os.Chown(secret, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	if text, err := ReadOwned(secret, owner); text != "root's\n" || err != nil {
		t.Errorf("%s's own file: %q, %v", name, text, err)
	}
}

func TestWriteOwnedReplacesALink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, ".pgpass")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := WriteOwned(path, []byte("new\n"), Owner{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "kept\n" {
		t.Errorf("the link's target was written: %q", b)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s is %v, want a regular file 0600", path, fi.Mode())
	}
	if b, _ := os.ReadFile(path); string(b) != "new\n" {
		t.Errorf("content %q", b)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, ".*.*")); len(names) != 0 {
		t.Errorf("temporary files left: %v", names)
	}

	name, uid, gid := testuser.Pgherd(t)
	if err := WriteOwned(path, []byte("theirs\n"), Owner{Name: name, UID: uid, GID: gid, Chown: true}); err != nil {
		t.Fatal(err)
	}
	if fi, err = os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != gid || fi.Mode().Perm() != 0o600 {
		t.Errorf("owned by %d:%d mode %v, want %d:%d 0600", st.Uid, st.Gid, fi.Mode().Perm(), uid, gid)
	}
}

// TestReadCheckedRule: Accept judges the file opened (through a link only
// with FollowLink), Max bounds what is read, and a missing file is
// fs.ErrNotExist.
func TestReadCheckedRule(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("0123456789"), 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadChecked(link, ReadRule{}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("a link without FollowLink: %v", err)
	}
	var seen uint32
	accept := func(st *syscall.Stat_t) error { seen = st.Mode & 0o777; return nil }
	if b, err := ReadChecked(link, ReadRule{FollowLink: true, Accept: accept, Max: 4}); string(b) != "0123" || err != nil || seen != 0o640 {
		t.Errorf("through the link, Max 4: %q, %v; Accept saw mode %o, want the target's 640", b, err, seen)
	}
	refuse := func(*syscall.Stat_t) error { return os.ErrPermission }
	if b, err := ReadChecked(target, ReadRule{Accept: refuse}); b != nil || !errors.Is(err, os.ErrPermission) {
		t.Errorf("refused: %q, %v", b, err)
	}
	if _, err := ReadChecked(filepath.Join(dir, "absent"), ReadRule{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}

// TestReadCheckedFollowingNeverBlocks: a FIFO that an include names, read
// through a link as pgconf reads as root, is refused at once instead of
// hanging the command until something writes into it.
func TestReadCheckedFollowingNeverBlocks(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "conf")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ReadChecked(link, ReadRule{FollowLink: true})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "is not a regular file") {
			t.Fatalf("reading a FIFO through a link: %v", err)
		}
	case <-time.After(3 * time.Second):
		// Let the blocked open go, so that the test ends.
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		t.Fatal("reading a FIFO through a link blocked")
	}
}
