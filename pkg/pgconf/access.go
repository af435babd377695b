package pgconf

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/pgherd/pgherd/pkg/safefs"
)

// readerFor returns how Load reads configuration files. As root, a file is
// read only if the account that owns the configuration (the owner of the
// data directory, else of the main file's directory) could read it
// itself, as PostgreSQL running as that account does: that account writes
// postgresql.conf, and an include there must not make root read and show
// a file of its own (include '/root/secret.conf').
func readerFor(mainPath, dataDir string) func(string) ([]byte, error) {
	if os.Geteuid() != 0 {
		return os.ReadFile
	}
	dir := dataDir
	if dir == "" {
		dir = filepath.Dir(mainPath)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return os.ReadFile // Load reports the missing main file itself
	}
	owner := fi.Sys().(*syscall.Stat_t)
	uid, gid := owner.Uid, owner.Gid
	if uid == 0 {
		return os.ReadFile
	}
	return func(path string) ([]byte, error) {
		return safefs.ReadChecked(path, safefs.ReadRule{FollowLink: true, Accept: func(st *syscall.Stat_t) error {
			perm := st.Mode & 0o777
			if !(st.Uid == uid && perm&0o400 != 0 || st.Gid == gid && perm&0o040 != 0 || perm&0o004 != 0) {
				return fmt.Errorf("%w: it is not readable by uid %d, which owns the configuration, so pgherd (root) does not read it either", os.ErrPermission, uid)
			}
			return nil
		}})
	}
}
