package instance

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pgherd/pgherd/pkg/site"
)

// undo collects the reversal of every step of a creation, run in reverse
// order when a later step fails.
type undo []func()

func (u *undo) add(f func()) { *u = append(*u, f) }

func (u undo) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// mkdirs creates dir and its missing parents, registering the removal of
// the top-most one it created. Only dir itself (with mode) goes to the
// PostgreSQL user: the parents stay root's, 0755, so that the account
// cannot rename or replace what root later finds there (the prefix, the
// DCS members' configuration directory).
func mkdirs(dir string, mode os.FileMode, owner site.SysUser, u *undo) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cannot use %s: %w", d, err)
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		m := os.FileMode(0o755)
		if i == 0 {
			m = mode
		}
		if err := os.Mkdir(d, m); err != nil {
			return fmt.Errorf("cannot create %s: %w (check prefix and run_prefix in site.yaml)", d, errors.Unwrap(err))
		}
		if i == len(missing)-1 {
			u.add(func() { os.RemoveAll(d) })
		}
		if i > 0 {
			continue
		}
		if err := chown(d, owner); err != nil {
			return err
		}
	}
	return nil
}

func chown(path string, owner site.SysUser) error {
	if !owner.Switch {
		return nil
	}
	if err := os.Lchown(path, int(owner.UID), int(owner.GID)); err != nil {
		return fmt.Errorf("cannot give %s to %s: %w", path, owner.Name, err)
	}
	return nil
}
