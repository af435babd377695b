// Package safefile reads and writes the files pgherd edits in directories
// the account PostgreSQL runs as controls (a data directory, a home
// directory), without ever following a link that account could plant:
// reads refuse anything but a plain file of that account's with one link,
// writes go to a new file beside it renamed over the old name.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/pgherd/pgherd/pkg/site"
)

// ReadOwned returns the content of path, or "" and no error when it does
// not exist. It refuses a link, a special file, a file with several links
// and, when pgherd runs as root, a file owner does not own.
func ReadOwned(path string, owner site.SysUser) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("refusing to read %s: %w (it must be a plain file of %s's)", path, err, owner.Name)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || st == nil || st.Nlink != 1 || (os.Geteuid() == 0 && owner.Switch && st.Uid != owner.UID) {
		return "", fmt.Errorf("refusing to read %s: it must be a plain file of %s's with one link; move it away", path, owner.Name)
	}
	b, err := io.ReadAll(f)
	return string(b), err
}

// WriteOwned replaces path with data, mode 0600, owned by owner (when
// pgherd switches to it): a new file beside it, synced, renamed over it.
func WriteOwned(path string, data []byte, owner site.SysUser) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil && owner.Switch {
		err = tmp.Chown(int(owner.UID), int(owner.GID))
	}
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}
