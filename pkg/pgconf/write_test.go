package pgconf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgherd/pgherd/internal/testuser"
)

// TestWriteRefusesForeignLink: a postgresql.conf that the PostgreSQL
// account replaced with a link to a file of root's is not rewritten by
// root; a link to a file of the same owner still is.
func TestWriteRefusesForeignLink(t *testing.T) {
	_, u, g := testuser.Pgherd(t)
	uid, gid := int(u), int(g)
	dir := t.TempDir()
	target := filepath.Join(dir, "root-only")
	if err := os.WriteFile(target, []byte("root's\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "postgresql.conf")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, uid, gid); err != nil {
		t.Fatal(err)
	}
	err := writeFile(link, []byte("port = 5432\n"), []byte("root's\n"))
	if err == nil || !strings.Contains(err.Error(), "pgherd does not write through it") {
		t.Fatalf("write through a foreign link: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "root's\n" {
		t.Fatalf("the link's target was rewritten: %q", b)
	}
	if err := os.Lchown(link, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(link, []byte("port = 5432\n"), []byte("root's\n")); err != nil {
		t.Fatalf("write through a link of the target's owner: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "port = 5432\n" {
		t.Fatalf("target: %q", b)
	}
}

// TestLoadReadsOnlyWhatTheOwnerCould: as root, an include in a
// configuration owned by the PostgreSQL account names a file only root can
// read: Load refuses it instead of reading (and showing) it.
func TestLoadReadsOnlyWhatTheOwnerCould(t *testing.T) {
	_, u, g := testuser.Pgherd(t)
	data := t.TempDir()
	if err := os.Chown(data, int(u), int(g)); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret.conf")
	if err := os.WriteFile(secret, []byte("password_encryption = 'root-only'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(data, "postgresql.conf")
	if err := os.WriteFile(main, []byte("port = 5432\ninclude '"+secret+"'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(main, int(u), int(g)); err != nil {
		t.Fatal(err)
	}
	c, err := Load(main, data)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range c.Entries() {
		if strings.Contains(e.Value, "root-only") {
			t.Fatalf("root read a file the owner cannot: %+v", e)
		}
	}
	errs := fmt.Sprint(c.Errors())
	if !strings.Contains(errs, "not readable by uid") || strings.Contains(errs, "root-only") {
		t.Fatalf("errors: %s", errs)
	}
	// Once the owner may read it, so may root.
	if err := os.Chmod(secret, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(main, data); err != nil {
		t.Fatal(err)
	}
}
