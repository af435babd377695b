package safefs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func ownerOf(t *testing.T, p string) uint32 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Uid
}

// oldTree makes dir/{key,sub/wal} owned by uid old, as an older member's.
func oldTree(t *testing.T, old int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "member")
	for _, d := range []string{dir, filepath.Join(dir, "sub")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"key", "sub/wal"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, old, old)
	}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRehome(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	const old, dcs = 4001, 4002
	to := Owner{Name: "dcs", UID: dcs, GID: dcs}
	dir := oldTree(t, old)
	if err := Rehome(dir, []uint32{old}, to); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "key"), filepath.Join(dir, "sub"), filepath.Join(dir, "sub/wal")} {
		if u := ownerOf(t, p); u != dcs {
			t.Errorf("%s: owner %d, want %d", p, u, dcs)
		}
	}
	// Again: nothing to do.
	if err := Rehome(dir, []uint32{old}, to); err != nil {
		t.Errorf("second run: %v", err)
	}
	if err := Rehome(filepath.Join(dir, "absent"), []uint32{old}, to); err != nil {
		t.Errorf("absent dir: %v", err)
	}
}

// TestRehomeFollowsNothing: what the old account planted (a link to a file
// of another account, a hard link to one, another account's file, a link
// as the directory itself) is refused, and that file keeps its owner.
func TestRehomeFollowsNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	const old, dcs = 4001, 4002
	to := Owner{Name: "dcs", UID: dcs, GID: dcs}
	outside := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(outside, []byte("root's"), 0o600); err != nil {
		t.Fatal(err)
	}
	plant := map[string]func(p string) error{
		"symlink":  func(p string) error { return os.Symlink(outside, p) },
		"hardlink": func(p string) error { return os.Link(outside, p) },
		"foreign": func(p string) error {
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				return err
			}
			return os.Chown(p, 4003, 4003)
		},
		"fifo": func(p string) error { return syscall.Mkfifo(p, 0o600) },
	}
	for what, mk := range plant {
		t.Run(what, func(t *testing.T) {
			dir := oldTree(t, old)
			if err := mk(filepath.Join(dir, "sub", "planted")); err != nil {
				t.Fatal(err)
			}
			err := Rehome(dir, []uint32{old}, to)
			if !errors.Is(err, ErrForeign) {
				t.Errorf("Rehome: %v, want ErrForeign", err)
			}
			if u := ownerOf(t, outside); u != 0 {
				t.Errorf("the file outside now belongs to %d", u)
			}
		})
	}
	dir := oldTree(t, old)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if err := Rehome(link, []uint32{old}, to); !errors.Is(err, ErrNotOurs) {
		t.Errorf("Rehome of a link: %v", err)
	}
	if u := ownerOf(t, dir); u != old {
		t.Errorf("the link's target was handed over: owner %d", u)
	}
}
