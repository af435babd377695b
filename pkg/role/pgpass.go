package role

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/pgherd/pgherd/pkg/site"
)

// Pgpass is the .pgpass file of the account PostgreSQL runs as, where
// 'role create --pgpass' keeps a role's password for that account's
// clients (libpq reads it). pgherd writes lines "*:PORT:*:ROLE:PASSWORD".
type Pgpass struct {
	Path  string
	Owner site.SysUser
}

// UserPgpass returns the .pgpass of u's home directory.
func UserPgpass(u site.SysUser) (Pgpass, error) {
	acct, err := user.Lookup(u.Name)
	if err != nil {
		return Pgpass{}, fmt.Errorf("looking up the home directory of %s: %w", u.Name, err)
	}
	return Pgpass{Path: filepath.Join(acct.HomeDir, ".pgpass"), Owner: u}, nil
}

func pgpassEscape(s string) string { return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(s) }

// Set keeps password for role on port, replacing the line it had.
func (p Pgpass) Set(port int, role string, password *Secret) error {
	return p.edit(port, role, "*:"+strconv.Itoa(port)+":*:"+pgpassEscape(role)+":"+pgpassEscape(password.Reveal()))
}

// Remove deletes the line of role on port, if any.
func (p Pgpass) Remove(port int, role string) error { return p.edit(port, role, "") }

// edit rewrites the file with line in place of role's line on port
// (appended when it had none; removed when line is ""). The file belongs to
// the account, which could make it a link to a file it may not read, so it
// is opened without following links and must be a plain file of the
// account's with a single link; the new file is written beside it with
// mode 0600 and renamed over it (rename replaces a link, never follows it).
func (p Pgpass) edit(port int, role, line string) error {
	prefix := "*:" + strconv.Itoa(port) + ":*:" + pgpassEscape(role) + ":"
	old, err := p.read()
	if err != nil {
		return err
	}
	var out []string
	found := false
	for _, l := range strings.SplitAfter(old, "\n") {
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, prefix) {
			found = true
			if line != "" {
				out = append(out, line+"\n")
			}
			continue
		}
		if !strings.HasSuffix(l, "\n") {
			l += "\n"
		}
		out = append(out, l)
	}
	if !found {
		if line == "" {
			return nil
		}
		out = append(out, line+"\n")
	}
	return p.write([]byte(strings.Join(out, "")))
}

func (p Pgpass) read() (string, error) {
	f, err := os.OpenFile(p.Path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("refusing to use %s: %w (it must be a plain file of %s's)", p.Path, err, p.Owner.Name)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || st == nil || st.Nlink != 1 || (os.Geteuid() == 0 && st.Uid != p.Owner.UID) {
		return "", fmt.Errorf("refusing to use %s: it must be a plain file of %s's with one link; move it away", p.Path, p.Owner.Name)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func (p Pgpass) write(data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p.Path), ".pgpass.*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", p.Path, err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil && p.Owner.Switch {
		err = tmp.Chown(int(p.Owner.UID), int(p.Owner.GID))
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
		err = os.Rename(tmp.Name(), p.Path)
	}
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", p.Path, err)
	}
	return nil
}
