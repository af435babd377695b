package instance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgherd/pgherd/pkg/pgconf"
)

// pgherd owns the settings that say where an instance's files are: it
// finds the data directory, pg_hba.conf, pg_ident.conf and postgresql.conf
// by their paths (site.yaml's templates), so a server reading them from
// elsewhere would no longer be the instance pgherd describes, edits and
// starts. pglift and Patroni keep the same settings to themselves.
var ownedSettings = []string{"config_file", "data_directory", "external_pid_file", "hba_file", "ident_file"}

// CheckOwned refuses a change to a setting pgherd owns.
func CheckOwned(name string) error {
	name = strings.ToLower(name)
	if slices.Contains(ownedSettings, name) {
		return fmt.Errorf("%s is set by pgherd, which finds the instance's files by their paths (pglift and Patroni keep it too): it cannot be changed", name)
	}
	return nil
}

// ConfTarget describes the instance for package pgconf. Changes to a
// Patroni member's postgresql.conf are refused (Patroni rewrites it: they
// go through Patroni, see PatroniSetParameters); reading it is not.
func ConfTarget(env *Env, i *Instance, change bool) (pgconf.Target, error) {
	if change && i.PatroniManaged() {
		return pgconf.Target{}, fmt.Errorf("instance %s is managed by Patroni (%s), which rewrites its postgresql.conf: use 'pgherd pgconf set|remove -i %s' (they go through Patroni)",
			i.ID(), i.PatroniConfig, i.ID())
	}
	return pgconf.Target{
		Name: i.ID(), ConfigFile: i.ConfFile(), DataDir: i.DataDir, BinDir: i.BinDir, Config: i.Conf,
		Running: i.State() == Started, Runner: env.Runner,
		Connect: func(ctx context.Context) (*pgx.Conn, error) { return i.Connect(ctx, env) },
		Check:   func(c *pgconf.Config, names []string) error { return checkConf(env, i, c, names) },
	}, nil
}

// checkConf refuses changes that would lock pgherd out of the instance or
// keep it from starting: settings pgherd owns, a port that is not free, a
// socket directory pgherd cannot connect through. c is the configuration
// as the change would leave it.
func checkConf(env *Env, i *Instance, c *pgconf.Config, names []string) error {
	for _, n := range names {
		if err := CheckOwned(n); err != nil {
			return err
		}
		if err := BackupEnv(env).CheckOwned(backupInstance(env, i), n); err != nil {
			return err
		}
	}
	if slices.Contains(names, "port") || slices.Contains(names, "listen_addresses") {
		port, err := strconv.Atoi(c.Next("port", "5432"))
		if err != nil {
			return fmt.Errorf("port %q is not a number", c.Next("port", "5432"))
		}
		if err := checkPort(env, port, i); err != nil {
			return fmt.Errorf("%w: choose another port", err)
		}
	}
	if slices.Contains(names, "unix_socket_directories") {
		return checkSocketDirs(c.Next("unix_socket_directories", "/var/run/postgresql"))
	}
	return nil
}

// checkSocketDirs refuses socket directories the server would not start
// with, or that would leave pgherd no socket to connect through (it
// connects over the first one, as postmaster.pid names it).
func checkSocketDirs(v string) error {
	var dirs []string
	for _, d := range strings.Split(v, ",") {
		if d = strings.TrimSpace(d); d != "" {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) == 0 {
		return fmt.Errorf("unix_socket_directories cannot be empty: pgherd connects to the instance over its Unix socket")
	}
	for _, d := range dirs {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("unix_socket_directories: %s is not an absolute path: pgherd and the server must agree on where the socket is", d)
		}
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			return fmt.Errorf("unix_socket_directories: directory %s does not exist, so the server would not start: create it first", d)
		}
	}
	return nil
}
