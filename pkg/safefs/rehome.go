package safefs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrForeign is wrapped by Rehome's error when it met something it must
// not hand over: a link, a special file, a hard link or another account's
// file.
var ErrForeign = errors.New("refusing to hand it over")

// Rehome hands directory dir and everything under it from the accounts
// from to account to (chown -R), as root, without following a link: dir
// itself must not be a symbolic link; everything under it is reached
// through an os.Root opened on dir (which resolves no name outside it)
// and chowned through the descriptor it opened (fchown), after checking
// that this descriptor is the entry first looked at (no swap), a
// directory or a regular file with a single link (a hard link would hand
// over a file elsewhere), and owned by one of from or already by to.
// Anything else stops it with an error wrapping ErrForeign; what it
// handed over until then stays handed over, and a second run resumes. A
// directory that does not exist is not an error.
func Rehome(dir string, from []uint32, to Owner) error {
	ok := func(uid uint32) bool {
		for _, f := range from {
			if uid == f {
				return true
			}
		}
		return uid == to.UID
	}
	r, err := openDir(dir, func(_ *os.Root, uid uint32) error {
		if !ok(uid) {
			return fmt.Errorf("%s belongs to uid %d: %w; give it to %s yourself if it is the member's", dir, uid, ErrForeign, to.Name)
		}
		return nil
	})
	if err != nil || r == nil {
		return err
	}
	defer r.Close()
	return rehome(r, ".", dir, ok, to)
}

func rehome(r *os.Root, name, path string, ok func(uint32) bool, to Owner) error {
	refuse := func(why string) error {
		return fmt.Errorf("%s %s: %w; remove it (the member made no such thing) and try again", path, why, ErrForeign)
	}
	seen, err := r.Lstat(name)
	if err != nil {
		return err
	}
	if !seen.IsDir() && !seen.Mode().IsRegular() {
		return refuse(fmt.Sprintf("is not a directory or a regular file (%s)", seen.Mode().Type()))
	}
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	switch {
	case !os.SameFile(seen, fi):
		return refuse("changed while pgherd looked at it")
	case !fi.IsDir() && st.Nlink > 1:
		return refuse(fmt.Sprintf("is a hard link (%d names)", st.Nlink))
	case !ok(st.Uid):
		return refuse(fmt.Sprintf("belongs to uid %d", st.Uid))
	}
	if st.Uid != to.UID || st.Gid != to.GID {
		if err := f.Chown(int(to.UID), int(to.GID)); err != nil {
			return fmt.Errorf("give %s to %s: %w", path, to.Name, err)
		}
	}
	if !fi.IsDir() {
		return nil
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := rehome(r, filepath.Join(name, n), filepath.Join(path, n), ok, to); err != nil {
			return err
		}
	}
	return nil
}
