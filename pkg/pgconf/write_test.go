package pgconf

import (
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
