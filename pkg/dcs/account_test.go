package dcs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pgherd/pgherd/pkg/service"
)

// TestSetupRefusesPatroniKeyAmongMemberKeys: on a host where a Patroni's
// DCS key sits in a member's certificate directory owned by another
// account (members made before they had an account of their own), a new
// member is refused, nothing made, rather than handing that key to the
// members' account and leaving Patroni without it.
func TestSetupRefusesPatroniKeyAmongMemberKeys(t *testing.T) {
	pg := pgherdUser(t)
	members := &service.User{Name: "pgherd-dcs-test", UID: pg.UID + 1000, GID: pg.GID + 1000}
	l := &Local{Dir: t.TempDir(), User: members, PatroniUser: pg}
	old := l.TLSDir("pg1")
	if err := os.MkdirAll(old, 0o700); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(old, "patroni.key")
	if err := os.WriteFile(key, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{old, key} {
		if err := os.Chown(p, int(pg.UID), int(pg.GID)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := l.Setup(context.Background(), Config{Name: "pg2", Role: RoleData, ListenPeer: "127.0.0.1:1", ListenClient: "127.0.0.1:2"})
	if err == nil || !strings.Contains(err.Error(), "member pg1 was set up before DCS members had an account of their own") ||
		!strings.Contains(err.Error(), "patroni.dcs.embedded.sysuser") {
		t.Fatalf("Setup = %v", err)
	}
	for _, p := range []string{l.ConfigFile("pg2"), l.TLSDir("pg2"), l.PKI().Dir, l.DefaultDataDir("pg2")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was made", p)
		}
	}
	if fi, _ := os.Stat(key); fi == nil || fi.Sys().(*syscall.Stat_t).Uid != pg.UID {
		t.Errorf("Patroni's key changed hands")
	}
}

// TestShareCredentialsSyncs: the members' copies follow the Patroni
// credentials files: a changed file's copy is refreshed, a copy whose
// file is gone (its cluster purged) is removed, and links the members'
// account planted among the copies are replaced or removed, never
// written through nor their targets removed.
func TestShareCredentialsSyncs(t *testing.T) {
	pg := pgherdUser(t)
	members := &service.User{Name: "pgherd-dcs-test", UID: pg.UID + 1000, GID: pg.GID + 1000}
	src := t.TempDir()
	l := &Local{Dir: t.TempDir(), User: members, PatroniUser: pg, Credentials: filepath.Join(src, "*.credentials")}
	write := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(src, "a.credentials"), "a1")
	write(filepath.Join(src, "b.credentials"), "b1")
	if err := l.ShareCredentials(); err != nil {
		t.Fatal(err)
	}
	copies := filepath.Join(l.Dir, "credentials")
	for name, want := range map[string]string{"a.credentials": "a1", "b.credentials": "b1"} {
		p := filepath.Join(copies, name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != want || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != members.UID {
			t.Errorf("%s: %q, mode %v, uid %d; want %q, 0600, the members' uid", name, b, fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Uid, want)
		}
	}

	// a changes, b's cluster is purged, and the members' account plants a
	// link in place of a's copy and another one under a copy's name.
	write(filepath.Join(src, "a.credentials"), "a2")
	if err := os.Remove(filepath.Join(src, "b.credentials")); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	kept, stale := filepath.Join(outside, "kept"), filepath.Join(outside, "stale")
	write(kept, "root's")
	write(stale, "root's too")
	for link, target := range map[string]string{"a.credentials": kept, "c.credentials": stale} {
		p := filepath.Join(copies, link)
		os.Remove(p)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.ShareCredentials(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(copies, "a.credentials")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("a's copy is not a regular file again: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(copies, "a.credentials")); string(b) != "a2" {
		t.Errorf("a's copy holds %q, want the refreshed a2", b)
	}
	for _, gone := range []string{"b.credentials", "c.credentials"} {
		if _, err := os.Lstat(filepath.Join(copies, gone)); err == nil {
			t.Errorf("%s, whose file is gone, is still among the copies", gone)
		}
	}
	for path, want := range map[string]string{kept: "root's", stale: "root's too"} {
		if b, err := os.ReadFile(path); string(b) != want {
			t.Errorf("a link's target %s: %q, %v; want it untouched", path, b, err)
		}
	}

	// The last file gone, no copy is left.
	if err := os.Remove(filepath.Join(src, "a.credentials")); err != nil {
		t.Fatal(err)
	}
	if err := l.ShareCredentials(); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(copies, "*")); len(left) != 0 {
		t.Errorf("copies left: %v", left)
	}
}
