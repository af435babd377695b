// Package postgres knows PostgreSQL's binaries and files: which versions are
// installed, how to read postmaster.pid, and how to connect to a server.
package postgres

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
)

// BinDir returns the binary directory of version from the site template.
func BinDir(tmpl, version string) string {
	return strings.ReplaceAll(tmpl, "{version}", version)
}

// Versions lists the installed major versions, newest first, by probing the
// bindir template for a postgres binary.
func Versions(tmpl string) []string {
	matches, _ := filepath.Glob(filepath.Join(strings.ReplaceAll(tmpl, "{version}", "*"), "postgres"))
	prefix, suffix, _ := strings.Cut(tmpl, "{version}")
	var out []string
	for _, m := range matches {
		v := strings.TrimSuffix(strings.TrimPrefix(filepath.Dir(m), prefix), strings.TrimSuffix(suffix, "/"))
		if _, err := strconv.Atoi(v); err == nil {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := strconv.Atoi(out[i])
		b, _ := strconv.Atoi(out[j])
		return a > b
	})
	return out
}

// CheckInstalled returns an error that says how to install version when its
// postgres binary is missing.
func CheckInstalled(tmpl, version string) error {
	bin := filepath.Join(BinDir(tmpl, version), "postgres")
	if _, err := os.Stat(bin); err == nil {
		return nil
	}
	msg := fmt.Sprintf("PostgreSQL %s is not installed (no %s): install postgresql-%s", version, bin, version)
	if vs := Versions(tmpl); len(vs) > 0 {
		msg += " or use --version " + strings.Join(vs, "|")
	}
	return fmt.Errorf("%s", msg)
}

// PIDFile is what postmaster.pid says about a server.
type PIDFile struct {
	PID    int
	Port   int
	Socket string
	Status string // "starting", "ready", "stopping", "standby"
}

// ReadPIDFile reads DATADIR/postmaster.pid. It returns os.ErrNotExist when
// there is none.
func ReadPIDFile(datadir string) (PIDFile, error) {
	b, err := os.ReadFile(filepath.Join(datadir, "postmaster.pid"))
	if err != nil {
		return PIDFile{}, err
	}
	lines := strings.Split(string(b), "\n")
	var p PIDFile
	if len(lines) > 0 {
		p.PID, _ = strconv.Atoi(strings.TrimSpace(lines[0]))
	}
	if len(lines) > 3 {
		p.Port, _ = strconv.Atoi(strings.TrimSpace(lines[3]))
	}
	if len(lines) > 4 {
		p.Socket = strings.TrimSpace(lines[4])
	}
	if len(lines) > 7 {
		p.Status = strings.TrimSpace(lines[7])
	}
	return p, nil
}

// Alive reports whether pid is a live process that is not a zombie.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && err != syscall.EPERM {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// Running returns the postmaster's PID when the server of datadir runs.
func Running(datadir string) (PIDFile, bool) {
	p, err := ReadPIDFile(datadir)
	if err != nil || !Alive(p.PID) {
		return p, false
	}
	return p, true
}

// ConnParams names a server and a role to connect as.
type ConnParams struct {
	SocketDir string
	Port      int
	User      string
	Database  string
	PassFile  string
}

// Connect opens a connection over the Unix socket.
func Connect(ctx context.Context, p ConnParams) (*pgx.Conn, error) {
	db := p.Database
	if db == "" {
		db = "postgres"
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s connect_timeout=5", p.SocketDir, p.Port, p.User))
	if err != nil {
		return nil, err
	}
	cfg.Database = db // any name, as given: never parsed as conninfo
	cfg.RuntimeParams["application_name"] = "pgherd"
	// pgherd's connections are short-lived: preparing statements for a cache
	// that dies with the connection costs a round trip per query.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	if pw, ok := passwordFromFile(p.PassFile, p.User); ok {
		cfg.Password = pw
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to PostgreSQL on %s port %d as %s: %w", p.SocketDir, p.Port, p.User, err)
	}
	return conn, nil
}

// passwordFromFile reads the password of user from a pgpass file of the
// form pgherd writes ("*:*:*:user:password"); pgx would also read
// PGPASSFILE, but only from the environment.
func passwordFromFile(path, user string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 5)
		if len(f) == 5 && (f[3] == user || f[3] == "*") {
			return strings.NewReplacer(`\:`, ":", `\\`, `\`).Replace(f[4]), true
		}
	}
	return "", false
}
