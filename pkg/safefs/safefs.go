// Package safefs holds the file operations pgherd performs as root in
// directories that the service account (the one PostgreSQL, Patroni and
// DCS members run as) can write. That account may plant symbolic links,
// hard links, FIFOs or whole directory trees there; nothing here follows
// them out of the place it was given.
package safefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// OpenAppend opens path for appending, creating it with mode when absent.
// It guarantees that what it returns is a regular file with a single link
// that was at path itself: a symbolic link at path is refused (O_NOFOLLOW),
// a FIFO does not block the open and is refused, and so is a hard link to a
// file elsewhere (a chown through it would hand that file over).
func OpenAppend(path string, mode os.FileMode) (*os.File, error) {
	return openRegular(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, mode)
}

// openRegular opens path with flag, never through a symbolic link at path
// and never blocking on a FIFO, and keeps it only if it is a regular file
// with a single link.
func openRegular(path string, flag int, mode os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, mode)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s is a symbolic link: refusing to open it as root; remove it", path)
	}
	if err != nil {
		return nil, err
	}
	if err := checkRegular(f, path); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func checkRegular(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s): refusing to use it; remove it", path, fi.Mode().Type())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
		return fmt.Errorf("%s is a hard link (%d names): refusing to use it as root; remove it", path, st.Nlink)
	}
	return nil
}

// ErrNotOurs is wrapped by RemoveDir's error when its check refused the
// directory.
var ErrNotOurs = errors.New("refusing to delete it")

// CheckDir opens directory dir without following a symbolic link at dir
// and runs check on it (see RemoveDir). A directory that does not exist
// passes.
func CheckDir(dir string, check func(r *os.Root, uid uint32) error) error {
	r, err := openDir(dir, check)
	if r != nil {
		r.Close()
	}
	return err
}

// RemoveDir deletes directory dir and everything under it, but only once
// check has approved the directory actually opened, and never anything
// outside it: dir itself must not be a symbolic link, its contents are
// removed through an os.Root opened on it (a link inside is removed, not
// followed), and the final rmdir of dir removes an empty directory or a
// link at most. check gets that root and the directory's owner; a
// directory that does not exist is not an error.
func RemoveDir(dir string, check func(r *os.Root, uid uint32) error) error {
	r, err := openDir(dir, check)
	if err != nil || r == nil {
		return err
	}
	defer r.Close()
	names, err := Names(r)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := r.RemoveAll(n); err != nil {
			return err
		}
	}
	return os.Remove(dir)
}

// Names lists the names in r's directory.
func Names(r *os.Root) ([]string, error) {
	d, err := r.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// openDir opens dir as an os.Root once check approved it; nil and no error
// when dir does not exist.
func openDir(dir string, check func(r *os.Root, uid uint32) error) (*os.Root, error) {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%s is a symbolic link: %w; remove the link, and what it points to if it must go, yourself", dir, ErrNotOurs)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory: %w", dir, ErrNotOurs)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	opened, err := r.Stat(".")
	if err == nil && !os.SameFile(fi, opened) {
		err = fmt.Errorf("%s changed while pgherd looked at it: %w; try again", dir, ErrNotOurs)
	}
	if err == nil {
		err = check(r, opened.Sys().(*syscall.Stat_t).Uid)
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Open opens path for reading, with the guarantees of OpenAppend: a
// symbolic link at path is refused, and so is anything but a regular file
// with a single link. Root reads logs and configuration files in the
// service account's directories this way, so that a link planted there
// cannot make it print or parse a file of its own.
func Open(path string) (*os.File, error) { return openRegular(path, os.O_RDONLY, 0) }

// ReadFile reads path as Open opens it.
func ReadFile(path string) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
