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

	"github.com/pgherd/pgherd/pkg/safefs"
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
	if _, err := strconv.Atoi(version); err != nil {
		if vs := Versions(tmpl); len(vs) > 0 {
			return fmt.Errorf("--version %q is not a PostgreSQL major version: use one of the installed ones, %s", version, strings.Join(vs, ", "))
		}
		return fmt.Errorf("--version %q is not a PostgreSQL major version, and none is installed (nothing matches %s): install postgresql-15", version, tmpl)
	}
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

// PIDFile is what postmaster.pid says about a running server: where it
// really listens, whatever its configuration files say now.
type PIDFile struct {
	PID     int
	DataDir string
	Port    int
	// Socket is the first of unix_socket_directories ("" when the server
	// has no Unix socket).
	Socket string
	// Listen is the first of listen_addresses ("" when the server has no
	// TCP socket).
	Listen string
	Status string // "starting", "ready", "stopping", "standby"
}

// ReadPIDFile reads DATADIR/postmaster.pid (lines: PID, data directory,
// start time, port, socket directory, listen address, shared memory key,
// status). It returns os.ErrNotExist when there is none.
func ReadPIDFile(datadir string) (PIDFile, error) {
	b, err := safefs.ReadFile(filepath.Join(datadir, "postmaster.pid"))
	if err != nil {
		return PIDFile{}, err
	}
	lines := strings.Split(string(b), "\n")
	line := func(n int) string {
		if n < len(lines) {
			return strings.TrimSpace(lines[n])
		}
		return ""
	}
	p := PIDFile{DataDir: line(1), Socket: line(4), Listen: line(5), Status: line(7)}
	p.PID, _ = strconv.Atoi(line(0))
	p.Port, _ = strconv.Atoi(line(3))
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

// Running returns the postmaster's PID when the server of datadir runs: a
// live process of the account that owns datadir. postmaster.pid is that
// account's to write, so a PID it names of anyone else's process (root's,
// which pgherd would then signal) is not the server.
func Running(datadir string) (PIDFile, bool) {
	p, err := ReadPIDFile(datadir)
	if err != nil || !Alive(p.PID) {
		return p, false
	}
	fi, err := os.Stat(datadir)
	if err != nil {
		return p, false
	}
	uid, ok := processUID(p.PID)
	if !ok || uid != fi.Sys().(*syscall.Stat_t).Uid {
		return p, false
	}
	return p, true
}

// processUID returns the real uid of process pid, from /proc.
func processUID(pid int) (uint32, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			uid, err := strconv.ParseUint(f[1], 10, 32)
			return uint32(uid), err == nil
		}
	}
	return 0, false
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
