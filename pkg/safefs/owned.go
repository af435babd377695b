package safefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Owner is the account whose files ReadOwned accepts and WriteOwned
// writes. Chown is true when pgherd runs as root and hands those files to
// that account: only then does ReadOwned check the file's owner, and only
// then does WriteOwned chown what it writes.
type Owner struct {
	Name     string
	UID, GID uint32
	Chown    bool
}

// ReadOwned returns the content of path, or "" and no error when it does
// not exist. It opens path as Open does (no symbolic link, no FIFO, only a
// regular file with a single link) and, when owner.Chown is set and pgherd
// runs as root, refuses a file owner does not own: root never reads, into
// a file it then rewrites, what a link or a foreign file planted by the
// account points at.
func ReadOwned(path string, owner Owner) (string, error) {
	f, err := Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && owner.Chown && os.Geteuid() == 0 && st.Uid != owner.UID {
		return "", fmt.Errorf("refusing to read %s: it belongs to uid %d, not to %s; move it away", path, st.Uid, owner.Name)
	}
	b, err := io.ReadAll(f)
	return string(b), err
}

// WriteOwned replaces path with data, mode 0600, owned by owner when
// owner.Chown is set: a new file beside it, synced, renamed over it, so
// that a link at path is replaced, never followed.
func WriteOwned(path string, data []byte, owner Owner) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil && owner.Chown {
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
