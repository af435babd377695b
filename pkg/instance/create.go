package instance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/names"
	"github.com/pgherd/pgherd/pkg/postgres"
	"github.com/pgherd/pgherd/pkg/safefs"
	"github.com/pgherd/pgherd/pkg/site"
)

// CreateRequest says what instance to make. Empty fields take the site's defaults.
type CreateRequest struct {
	Name          string
	Version       string
	Port          int // 0: the site's port, or the next free one
	Locale        string
	Encoding      string
	DataChecksums *bool
	AuthLocal     string
	AuthHost      string
	// SuperuserPassword is set on the superuser and kept in a 0600 pgpass
	// file; it never reaches a log line or an error.
	SuperuserPassword string
	State             State
	// Patroni, when set, makes the instance a member of a Patroni cluster
	// (patroni.go): Patroni initialises or clones it and runs it.
	Patroni *PatroniRequest
	// StandbyFor, a libpq connection string of a primary, makes the
	// instance its physical standby (standby.go); Slot names a replication
	// slot to create on the primary for it.
	StandbyFor, Slot string
}

// Create makes an instance: initdb, configuration, service, and a start
// unless State is stopped. It is all-or-nothing: when a step fails, what
// the earlier steps made is removed and the error says which step failed.
func Create(ctx context.Context, env *Env, req CreateRequest) (*Instance, error) {
	if err := names.Check("instance", req.Name); err != nil {
		return nil, err
	}
	pg := env.Site.PostgreSQL
	req.Version = firstNonEmpty(req.Version, pg.DefaultVersion)
	if req.Version == "" {
		vs := postgres.Versions(pg.Bindir)
		if len(vs) == 0 {
			return nil, fmt.Errorf("no PostgreSQL installed (nothing matches %s): install postgresql-15 or set postgresql.bindir in site.yaml", pg.Bindir)
		}
		req.Version = vs[0]
	}
	if err := postgres.CheckInstalled(pg.Bindir, req.Version); err != nil {
		return nil, err
	}
	i := paths(env.Site, req.Version, req.Name)
	if exists(i.DataDir) {
		return nil, fmt.Errorf("instance %s already exists (%s): drop it first or choose another name", i.ID(), i.DataDir)
	}
	if nonEmpty(i.DataDir) || nonEmpty(i.WALDir) {
		return nil, fmt.Errorf("cannot create instance %s: %s or %s exists and is not empty; move it away first", i.ID(), i.DataDir, i.WALDir)
	}
	if req.Patroni != nil {
		if err := checkPatroniRequest(env, req); err != nil {
			return nil, err
		}
	} else if backsUp(env, req) {
		if err := BackupEnv(env).CheckCreate(backupInstance(env, i)); err != nil {
			return nil, err
		}
	}
	var primary *pgconn.Config
	if req.StandbyFor != "" || req.Slot != "" {
		var err error
		if primary, err = checkStandbyRequest(req); err != nil {
			return nil, err
		}
	}
	req.AuthLocal = firstNonEmpty(req.AuthLocal, pg.Auth.Local)
	req.AuthHost = firstNonEmpty(req.AuthHost, pg.Auth.Host)
	for _, m := range []struct{ flag, v string }{{"--auth-local", req.AuthLocal}, {"--auth-host", req.AuthHost}} {
		if !site.ValidAuthMethod(m.v) {
			return nil, fmt.Errorf("%s %q is not a pg_hba method: use trust, reject, scram-sha-256, md5, password, peer or ident", m.flag, m.v)
		}
	}
	if needsPassword(req.AuthLocal) && req.SuperuserPassword == "" {
		return nil, fmt.Errorf("--auth-local %s needs a superuser password, or pgherd could not connect: give --surole-password-file", req.AuthLocal)
	}
	if req.State == "" {
		req.State = Started
	}
	if req.State != Started && req.State != Stopped {
		return nil, fmt.Errorf("--state %q: use started or stopped", req.State)
	}
	port, err := choosePort(env, req.Port)
	if err != nil {
		return nil, err
	}
	i.Port = port
	if req.Patroni != nil {
		return createPatroni(ctx, env, i, req)
	}

	var u undo
	ok := false
	defer func() {
		if !ok {
			u.run()
		}
	}()
	log := logging.From(ctx)
	log.Info("initializing PostgreSQL instance " + i.ID())
	for _, d := range []string{filepath.Dir(i.DataDir), filepath.Dir(i.WALDir), i.LogDir, i.SocketDir} {
		if err := mkdirs(d, 0o755, env.User, &u); err != nil {
			return nil, err
		}
	}
	u.add(func() { os.RemoveAll(i.DataDir); os.RemoveAll(i.WALDir) })
	if primary != nil {
		if err := basebackup(ctx, env, i, req, primary); err != nil {
			return nil, err
		}
	} else if err := initdb(ctx, env, i, req); err != nil {
		return nil, err
	}
	if err := configure(env, i, req); err != nil {
		return nil, err
	}
	if _, err := env.Runner.Run(ctx, runCmd([]string{filepath.Join(i.BinDir, "initdb"), "--sync-only", "--pgdata", i.DataDir}, "")); err != nil {
		return nil, fmt.Errorf("syncing the data directory of %s to disk: %w", i.ID(), err)
	}
	if req.SuperuserPassword != "" {
		if err := mkdirs(filepath.Dir(i.PassFile), 0o700, env.User, &u); err != nil {
			return nil, err
		}
		line := fmt.Sprintf("*:*:*:%s:%s\n", pg.Surole.Name, strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(req.SuperuserPassword))
		if err := safefs.WriteOwned(i.PassFile, []byte(line), env.User.FileOwner()); err != nil {
			return nil, err
		}
		u.add(func() { os.Remove(i.PassFile) })
	}
	svc := i.Service(env)
	if err := env.Services.Install(ctx, svc); err != nil {
		return nil, fmt.Errorf("installing the service of %s: %w", i.ID(), err)
	}
	u.add(func() { _ = env.Services.Uninstall(context.WithoutCancel(ctx), svc) })
	if req.State == Started || backsUp(env, req) {
		u.add(func() { _ = env.Services.Stop(context.WithoutCancel(ctx), svc) })
	}
	if req.State == Started {
		if err := Start(ctx, env, i); err != nil {
			return nil, err
		}
	}
	if backsUp(env, req) {
		if err := setupBackups(ctx, env, i, &u); err != nil {
			return nil, err
		}
	} else if env.Site.PgBackRest != nil {
		log.Warn("pgBackRest is on, but a standby gets no stanza of its own: back up its primary")
	}
	ok = true
	return i, nil
}

func initdb(ctx context.Context, env *Env, i *Instance, req CreateRequest) error {
	pg := env.Site.PostgreSQL
	args := []string{
		filepath.Join(i.BinDir, "initdb"),
		"--pgdata", i.DataDir, "--waldir", i.WALDir,
		"--username", pg.Surole.Name,
		"--locale", firstNonEmpty(req.Locale, pg.Initdb.Locale),
		"--encoding", firstNonEmpty(req.Encoding, pg.Initdb.Encoding),
		// pgherd writes pg_hba.conf itself right after.
		"--auth-local", "trust", "--auth-host", "trust",
		// One sync pass after pgherd's own files are written (syncDataDir)
		// replaces initdb's pass plus an fsync per file.
		"--no-sync",
	}
	checksums := pg.Initdb.DataChecksums
	if req.DataChecksums != nil {
		checksums = *req.DataChecksums
	}
	if checksums {
		args = append(args, "--data-checksums")
	}
	if req.SuperuserPassword != "" {
		pw := filepath.Join(filepath.Dir(i.DataDir), ".pwfile-"+i.Name)
		if err := safefs.WriteOwned(pw, []byte(req.SuperuserPassword+"\n"), env.User.FileOwner()); err != nil {
			return err
		}
		defer os.Remove(pw)
		args = append(args, "--pwfile", pw)
	}
	if _, err := env.Runner.Run(ctx, runCmd(args, req.SuperuserPassword)); err != nil {
		return fmt.Errorf("initdb of %s failed: %w", i.ID(), err)
	}
	return nil
}

// configure appends pgherd's settings to initdb's postgresql.conf and
// writes pg_hba.conf and pg_ident.conf. The data directory belongs to the
// PostgreSQL account, so root neither reads nor writes through a link
// found there: it reads with safefs and replaces each file (writeFile).
func configure(env *Env, i *Instance, req CreateRequest) error {
	conf := i.ConfFile()
	b, err := safefs.ReadFile(conf)
	if err != nil {
		return err
	}
	var add strings.Builder
	fmt.Fprintf(&add, "\n# Added by pgherd for instance %s\n", i.ID())
	for _, kv := range [][2]string{
		{"port", strconv.Itoa(i.Port)},
		{"listen_addresses", quote("localhost")},
		{"unix_socket_directories", quote(i.SocketDir)},
		{"cluster_name", quote(i.ID())},
		{"logging_collector", "on"},
		{"log_directory", quote(i.LogDir)},
		{"log_filename", quote(i.serviceName() + "-%Y-%m-%d_%H%M%S.log")},
		{"log_line_prefix", quote("%m [%p] %q%u@%d ")},
	} {
		fmt.Fprintf(&add, "%s = %s\n", kv[0], kv[1])
	}
	if backsUp(env, req) {
		add.WriteString("# WAL archiving into the pgBackRest stanza (docs/backup.md)\n")
	}
	for _, kv := range archiveSettings(env, i, req) {
		fmt.Fprintf(&add, "%s = %s\n", kv[0], kv[1])
	}
	if err := safefs.WriteOwned(conf, append(b, add.String()...), env.User.FileOwner()); err != nil {
		return err
	}
	if err := safefs.WriteOwned(filepath.Join(i.DataDir, "pg_hba.conf"), []byte(hba(req)), env.User.FileOwner()); err != nil {
		return err
	}
	return safefs.WriteOwned(filepath.Join(i.DataDir, "pg_ident.conf"), []byte(ident(env)), env.User.FileOwner())
}

func hba(req CreateRequest) string {
	local := req.AuthLocal
	if local == "peer" || local == "ident" {
		local += " map=pgherd"
	}
	var b strings.Builder
	b.WriteString("# TYPE  DATABASE     USER  ADDRESS       METHOD\n")
	for _, db := range []string{"all", "replication"} {
		fmt.Fprintf(&b, "local   %-12s all                 %s\n", db, local)
		fmt.Fprintf(&b, "host    %-12s all   127.0.0.1/32  %s\n", db, req.AuthHost)
		fmt.Fprintf(&b, "host    %-12s all   ::1/128       %s\n", db, req.AuthHost)
	}
	return b.String()
}

// ident maps the accounts that administer the instance (root and the
// PostgreSQL user) to the superuser; everyone else keeps their own name.
func ident(env *Env) string {
	su := env.Site.PostgreSQL.Surole.Name
	var b strings.Builder
	b.WriteString("# MAPNAME  SYSTEM-USERNAME  PG-USERNAME\n")
	seen := map[string]bool{}
	for _, u := range []string{"root", env.User.Name} {
		if !seen[u] {
			seen[u] = true
			fmt.Fprintf(&b, "pgherd     %-16s %s\n", u, su)
		}
	}
	b.WriteString("pgherd     /^(.*)$          \\1\n")
	return b.String()
}

func nonEmpty(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) > 0
}

func needsPassword(m string) bool { return m == "scram-sha-256" || m == "md5" || m == "password" }

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}
