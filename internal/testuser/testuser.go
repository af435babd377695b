// Package testuser finds the unprivileged account tests run services as
// (pgherd, created by make deps), for tests that check what root does in
// that account's directories.
package testuser

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"testing"
)

// Name is the account's name.
const Name = "pgherd"

// Lookup returns the account's name, uid and gid, or an error saying that
// make deps creates it, for harnesses shared by several tests.
func Lookup() (name string, uid, gid uint32, err error) {
	u, err := user.Lookup(Name)
	if err != nil {
		return "", 0, 0, fmt.Errorf("no system user %s (make deps creates it): %w", Name, err)
	}
	id, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return "", 0, 0, fmt.Errorf("system user %s: uid %q: %w", Name, u.Uid, err)
	}
	g, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return "", 0, 0, fmt.Errorf("system user %s: gid %q: %w", Name, u.Gid, err)
	}
	return u.Username, uint32(id), uint32(g), nil
}

// Pgherd returns the account's name, uid and gid, and skips the test when
// it does not run as root or the account does not exist.
func Pgherd(t testing.TB) (name string, uid, gid uint32) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to act on files of another account")
	}
	name, uid, gid, err := Lookup()
	if err != nil {
		t.Skip(err)
	}
	return name, uid, gid
}
