package dcs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgherd/pgherd/pkg/safefs"
)

// TestDropTrust: the CA, the administrator's credential and the
// credentials copy stay while a data member is set up here, go with the
// last one (a witness keeps its own certificates), are removed without
// following a link planted inside, and a directory of a stranger account
// is refused.
func TestDropTrust(t *testing.T) {
	u := pgherdUser(t)
	l := &Local{Dir: t.TempDir(), User: u}
	member := func(name, role string) {
		raw := "name: " + name + "\nrole: " + role + "\nlisten_peer: 127.0.0.1:2380\nlisten_client: 127.0.0.1:2379\ndata_dir: /x\n"
		if err := os.WriteFile(l.ConfigFile(name), []byte(raw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	member("d", RoleData)
	member("w", RoleWitness)
	outside := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(outside, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	kept := []string{filepath.Join(l.TLSDir("w"), "peer.key"), l.ConfigFile("w")}
	dirs := []string{l.PKI().Dir, l.adminDir(), filepath.Join(l.Dir, "credentials")}
	for _, d := range append(dirs, l.TLSDir("w")) {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "peer.key"), []byte("k"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(l.PKI().Dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(l.PKI().Dir, int(u.UID), int(u.GID)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := l.DropTrust(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("data member d remains, but: %v", err)
		}
	}
	// A stranger's directory is refused, and stays.
	if err := os.Chown(l.adminDir(), 54321, 54321); err != nil {
		t.Fatal(err)
	}
	if err := l.DropTrust(ctx, "d"); !errors.Is(err, safefs.ErrNotOurs) {
		t.Fatalf("stranger's admin/: got %v, want ErrNotOurs", err)
	}
	if _, err := os.Stat(l.adminDir()); err != nil {
		t.Fatalf("stranger's admin/ removed: %v", err)
	}
	if err := os.Chown(l.adminDir(), 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.DropTrust(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Lstat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind the last data member: %v", d, err)
		}
	}
	for _, f := range append(kept, outside) {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s should stay: %v", f, err)
		}
	}
}
