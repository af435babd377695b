package safefs

import (
	"bytes"
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
	var rule ReadRule
	if owner.Chown && os.Geteuid() == 0 {
		rule.Accept = func(st *syscall.Stat_t) error {
			if st.Uid != owner.UID {
				return fmt.Errorf("refusing to read %s: it belongs to uid %d, not to %s; move it away", path, st.Uid, owner.Name)
			}
			return nil
		}
	}
	b, err := ReadChecked(path, rule)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return string(b), err
}

// ReadRule says which files ReadChecked reads, and how much of them.
type ReadRule struct {
	// Accept judges the file actually opened (its fstat, so a name
	// swapped after a check is never what is read) and says why root
	// must not read it; nil accepts any file.
	Accept func(st *syscall.Stat_t) error
	// FollowLink opens path through a symbolic link (a regular file still,
	// never blocking on a FIFO) instead of as Open does. Only for a caller
	// whose Accept judges the file reached as that file's own reader would
	// (pkg/pgconf: what the configuration's owner may read).
	FollowLink bool
	// Max bounds the bytes read (the rest is left unread); 0 reads the
	// whole file.
	Max int64
}

// openFollowing opens path through symbolic links, never blocking on a
// FIFO (one an include names would hang root's read), and keeps it only
// if it is a regular file.
func openFollowing(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file (%s): refusing to read it as root; point it at a file", path, fi.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ReadChecked returns the content of path once rule.Accept has approved
// the file opened. It is the one way root reads a file that another
// account may have put or named: opened as Open does unless
// rule.FollowLink, checked on the open descriptor, read from it. A missing
// file is an error wrapping fs.ErrNotExist.
func ReadChecked(path string, rule ReadRule) ([]byte, error) {
	open := Open
	if rule.FollowLink {
		open = openFollowing
	}
	f, err := open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if rule.Accept != nil {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil, fmt.Errorf("cannot tell who owns %s: not reading it", path)
		}
		if err := rule.Accept(st); err != nil {
			return nil, err
		}
	}
	// Sized from the stat, as os.ReadFile does: io.ReadAll would read a
	// 30 kB postgresql.conf 512 bytes first, growing and copying.
	size, r := fi.Size(), io.Reader(f)
	if rule.Max > 0 {
		size, r = min(size, rule.Max), io.LimitReader(f, rule.Max)
	}
	b := bytes.NewBuffer(make([]byte, 0, int(size)+bytes.MinRead))
	_, err = b.ReadFrom(r)
	return b.Bytes(), err
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
