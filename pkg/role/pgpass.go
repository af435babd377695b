package role

import (
	"fmt"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pgherd/pgherd/pkg/safefs"
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
// the account, which could make it a link to a file it may not read:
// safefs.ReadOwned and WriteOwned read and write it without following links.
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

func (p Pgpass) read() (string, error) { return safefs.ReadOwned(p.Path, p.Owner.FileOwner()) }

func (p Pgpass) write(data []byte) error { return safefs.WriteOwned(p.Path, data, p.Owner.FileOwner()) }
