package service

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/pgherd/pgherd/pkg/supervise"
)

// writeFileAtomic replaces path with data: a reader sees the old file or the
// new one, never a part (a full disk leaves the old one), and the file has
// its mode from the start.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	return supervise.WriteFileAtomic(path, data, mode)
}

// supervisorPath is p, or the pgherd-supervise beside the running
// executable, once checked executable.
func supervisorPath(p string) (string, error) {
	if p == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", err
		}
		p = filepath.Join(filepath.Dir(exe), SupervisorName)
	}
	if err := canExec(nil, p); err != nil {
		return "", fmt.Errorf("the supervisor %s: %w (it is built and installed beside pgherd)", p, err)
	}
	return p, nil
}

// canExec checks that u (nil: the current user) may execute path, so that a
// service whose account cannot run its program is refused before anything
// starts.
func canExec(u *User, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	name := "pgherd's user"
	if u != nil {
		uid, gid, name = u.UID, u.GID, u.Name
		if err := u.Reach(path); err != nil {
			return err
		}
	}
	mode := fi.Mode().Perm()
	switch {
	case uid == 0 && mode&0o111 != 0,
		st.Uid == uid && mode&0o100 != 0,
		st.Uid != uid && st.Gid == gid && mode&0o010 != 0,
		st.Uid != uid && st.Gid != gid && mode&0o001 != 0:
		return nil
	}
	return fmt.Errorf("%s (mode %04o, owner uid %d, group %d) is not executable by %s (uid %d): fix its mode or the setting that names it", path, mode, st.Uid, st.Gid, name, uid)
}

// writeIfChanged writes path unless it already holds data. It reports
// whether it wrote.
func writeIfChanged(path string, data []byte, mode os.FileMode) (bool, error) {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, data) {
		return false, os.Chmod(path, mode)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	if err := writeFileAtomic(path, data, mode); err != nil {
		return false, fmt.Errorf("cannot write %s: %w", path, err)
	}
	return true, nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// signalName is the name systemd and kill(1) know a signal by: "SIGINT".
func signalName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(s))
}
