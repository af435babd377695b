package database

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/run"
	"github.com/pgherd/pgherd/pkg/site"
)

// Server says how pg_dump and pg_restore reach the primary: they run
// through Runner (as the account PostgreSQL runs as) with the superuser.
type Server struct {
	BinDir   string
	Host     string // socket directory or address
	Port     int
	User     string
	PassFile string // "" when none
	Runner   run.Runner
}

// cmd runs args with a libpq environment that reaches the server.
func (s Server) cmd(args ...string) run.Cmd {
	env := []string{"PATH=/usr/bin:/bin", "PGHOST=" + s.Host, "PGPORT=" + strconv.Itoa(s.Port), "PGUSER=" + s.User, "PGAPPNAME=pgherd"}
	if s.PassFile != "" {
		env = append(env, "PGPASSFILE="+s.PassFile)
	}
	return run.Cmd{Args: args, Env: env}
}

// conninfoDB names database db as a conninfo string: a bare --dbname
// holding "=" or starting with "postgresql://" would be read as one.
func conninfoDB(db string) string {
	return "dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(db) + "'"
}

// Dump is one pg_dump archive (custom format) in an instance's dump
// directory, named DATABASE@TIME.dump with the name escaped.
type Dump struct {
	ID       string    `json:"id"`
	Database string    `json:"database"`
	Time     time.Time `json:"time"`
	Size     int64     `json:"size_bytes"`
	Path     string    `json:"path"`
}

const stamp = "20060102T150405Z"

// dumpFile names the archive of db made at t.
func dumpFile(db string, t time.Time) string {
	return url.QueryEscape(db) + "@" + t.UTC().Format(stamp) + ".dump"
}

// parseDump reads a file name back; ok is false for any other file.
func parseDump(name string) (db string, t time.Time, ok bool) {
	base, isDump := strings.CutSuffix(name, ".dump")
	i := strings.LastIndexByte(base, '@')
	if !isDump || i < 0 {
		return "", time.Time{}, false
	}
	db, err := url.QueryUnescape(base[:i])
	if err != nil {
		return "", time.Time{}, false
	}
	t, err = time.Parse(stamp, base[i+1:])
	return db, t, err == nil
}

// DumpTo runs pg_dump -Fc of database db into dir (made 0700 for owner
// when missing) and returns the archive. A failed dump leaves no file.
func DumpTo(ctx context.Context, s Server, dir string, owner site.SysUser, db string) (*Dump, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("cannot create the dump directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("cannot create the dump directory: %w", err)
	}
	if owner.Switch {
		if err := os.Chown(dir, int(owner.UID), int(owner.GID)); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	path := filepath.Join(dir, dumpFile(db, now))
	logging.From(ctx).Info(fmt.Sprintf("dumping database %s into %s", db, path))
	tmp := path + ".partial"
	// pg_dump makes the file itself, as the account, under umask 077: root
	// never chmods a path in a directory that account controls. The
	// renames below replace names, they follow no link.
	c := s.cmd("sh", "-c", `umask 077 && exec "$0" "$@"`, filepath.Join(s.BinDir, "pg_dump"), "-Fc", "--dbname", conninfoDB(db), "--file", tmp)
	if _, err := s.Runner.Run(ctx, c); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("dumping database %q: %w", db, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	return &Dump{ID: strings.TrimSuffix(filepath.Base(path), ".dump"), Database: db, Time: now.UTC().Truncate(time.Second), Size: fi.Size(), Path: path}, nil
}

// Dumps lists the archives of dir, oldest first.
func Dumps(dir string) ([]Dump, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return []Dump{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := []Dump{}
	for _, e := range entries {
		db, t, ok := parseDump(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, Dump{ID: strings.TrimSuffix(e.Name(), ".dump"), Database: db, Time: t, Size: info.Size(), Path: filepath.Join(dir, e.Name())})
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Time.Before(out[b].Time) })
	return out, nil
}

// FindDump returns the archive id of dir.
func FindDump(dir, id string) (*Dump, error) {
	ds, err := Dumps(dir)
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		if d.ID == id {
			return &d, nil
		}
	}
	return nil, fmt.Errorf("no dump %q in %s; see 'pgherd database dumps'", id, dir)
}

// Restore makes database target (the dump's own database when "") from
// an archive: it must not exist; it is created from template0 and
// pg_restore fills it in one transaction. On failure the new database is
// dropped again.
func Restore(ctx context.Context, s Server, conn *pgx.Conn, d *Dump, target string) (err error) {
	if target == "" {
		target = d.Database
	}
	var n int
	if err := conn.QueryRow(ctx, `select count(*) from pg_database where datname = $1`, target).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%w: %q; restore into a new one with --database NAME, or drop it first", ErrExists, target)
	}
	steps := []Step{{Desc: "create database " + target, SQL: "CREATE DATABASE " + Ident(target) + " TEMPLATE template0"}}
	noConnect := func(context.Context, string) (*pgx.Conn, error) { return nil, errors.New("unused") }
	if err := Exec(ctx, conn, noConnect, target, steps); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if _, derr := conn.Exec(context.WithoutCancel(ctx), "DROP DATABASE "+Ident(target)); derr == nil {
				err = fmt.Errorf("%w; database %q was dropped again", err, target)
			}
		}
	}()
	logging.From(ctx).Info(fmt.Sprintf("restoring %s into database %s", d.Path, target))
	c := s.cmd(filepath.Join(s.BinDir, "pg_restore"), "--dbname", conninfoDB(target), "--exit-on-error", "--single-transaction", d.Path)
	if _, err := s.Runner.Run(ctx, c); err != nil {
		return fmt.Errorf("restoring %s: %w", d.ID, err)
	}
	return nil
}
