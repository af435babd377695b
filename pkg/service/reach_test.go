package service

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Reach names the first directory the service's account cannot traverse.
func TestUserReach(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: another account's view of root's directories")
	}
	base := t.TempDir()
	for _, d := range []string{base, filepath.Dir(base)} { // testing's own directories are 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	private := filepath.Join(base, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	nobody := &User{Name: "nobody", UID: 65534, GID: 65534}
	err := nobody.Reach(filepath.Join(private, "pgherd-dcs"))
	if err == nil || !strings.Contains(err.Error(), private+" (mode 0700, owner uid 0) is not traversable by nobody") ||
		!strings.Contains(err.Error(), "chmod o+x "+private) {
		t.Fatalf("Reach through a 0700 root directory: err = %v", err)
	}
	if err := nobody.Reach(filepath.Join(base, "pgherd-dcs")); err != nil {
		t.Fatalf("Reach through 0755 directories: %v", err)
	}
	if err := os.Chown(private, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := nobody.Reach(filepath.Join(private, "pgherd-dcs")); err != nil {
		t.Fatalf("Reach through the account's own 0700 directory: %v", err)
	}
	var current *User
	if err := current.Reach(filepath.Join(private, "x")); err != nil {
		t.Fatalf("the current user (nil) is not checked: %v", err)
	}
}
