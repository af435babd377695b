// Package testuser finds the unprivileged account tests run services as
// (pgherd, created by make deps), for tests that check what root does in
// that account's directories.
package testuser

import (
	"os"
	"os/user"
	"strconv"
	"testing"
)

// Pgherd returns the account's name, uid and gid, and skips the test when
// it does not run as root or the account does not exist.
func Pgherd(t testing.TB) (name string, uid, gid uint32) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to act on files of another account")
	}
	u, err := user.Lookup("pgherd")
	if err != nil {
		t.Skip("no system user pgherd (make deps creates it)")
	}
	id, _ := strconv.Atoi(u.Uid)
	g, _ := strconv.Atoi(u.Gid)
	return u.Username, uint32(id), uint32(g)
}
