package pgconf

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
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
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		st, perm := fi.Sys().(*syscall.Stat_t), fi.Mode().Perm()
		if !(st.Uid == uid && perm&0o400 != 0 || st.Gid == gid && perm&0o040 != 0 || perm&0o004 != 0) {
			return nil, fmt.Errorf("%w: it is not readable by uid %d, which owns the configuration, so pgherd (root) does not read it either", os.ErrPermission, uid)
		}
		// Sized from the stat, as os.ReadFile does: io.ReadAll would read
		// a 30 kB postgresql.conf 512 bytes first, growing and copying.
		b := bytes.NewBuffer(make([]byte, 0, int(fi.Size())+bytes.MinRead))
		_, err = b.ReadFrom(f)
		return b.Bytes(), err
	}
}
