package pgconf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrChangedMeanwhile is returned when a file changed on disk between the
// moment pgherd read it and the moment it would write it.
var ErrChangedMeanwhile = errors.New("changed on disk meanwhile")

// writeFile replaces path with data atomically (temporary file in the same
// directory, fsync, rename, fsync of the directory), keeping the mode and
// owner of the file it replaces. It refuses when the file no longer holds
// expect, so that a concurrent edit is never lost. A symbolic link is
// followed (its target is rewritten) only when the link and its target
// have the same owner: the PostgreSQL account, which owns the data
// directory, must not make root rewrite a file that account cannot write.
func writeFile(path string, data, expect []byte) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	if err := checkLink(path, real); err != nil {
		return err
	}
	cur, err := os.ReadFile(real)
	if err != nil {
		return err
	}
	if !bytes.Equal(cur, expect) {
		return fmt.Errorf("%s %w: run the command again", path, ErrChangedMeanwhile)
	}
	st, err := os.Stat(real)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(real), "."+filepath.Base(real)+".pgherd-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(st.Mode().Perm())
	}
	if err == nil {
		err = chownLike(tmp.Name(), real)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), real)
	}
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(real)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// chownLike gives path the owner and group of like, when pgherd may (it
// runs as root); otherwise files already belong to the user running it.
func chownLike(path, like string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	st, err := os.Stat(like)
	if err != nil {
		return err
	}
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return os.Chown(path, int(s.Uid), int(s.Gid))
	}
	return nil
}

// checkLink refuses a symbolic link at path whose owner differs from the
// owner of the file it resolves to, real.
func checkLink(path, real string) error {
	li, err := os.Lstat(path)
	if err != nil || li.Mode()&os.ModeSymlink == 0 {
		return err
	}
	ti, err := os.Stat(real)
	if err != nil {
		return err
	}
	lu, tu := li.Sys().(*syscall.Stat_t).Uid, ti.Sys().(*syscall.Stat_t).Uid
	if lu != tu {
		return fmt.Errorf("%s is a symbolic link of uid %d to %s, a file of uid %d: pgherd does not write through it; edit %s yourself, or replace the link with the file", path, lu, real, tu, real)
	}
	return nil
}
