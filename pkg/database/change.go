package database

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgherd/pgherd/pkg/role"
)

// Spec says what a database should be. Empty fields leave it as it is (on
// create: PostgreSQL's defaults). Schemas and Extensions are made when
// missing, never dropped.
type Spec struct {
	Name       string
	Owner      string
	Encoding   string // create only
	Locale     string // create only
	Tablespace string
	Schemas    []string
	Extensions []string
}

// Step is one statement of a plan and what it changes. InDatabase steps
// run in a transaction in the database itself, the others from the
// maintenance connection.
type Step struct {
	Desc       string `json:"change"`
	SQL        string `json:"-"`
	InDatabase bool   `json:"-"`
}

// Plan returns the statements that make current (nil: missing) what s
// says, or none. It refuses what cannot change after creation.
func Plan(current *Database, s Spec) ([]Step, error) {
	if err := role.CheckName("database", s.Name); err != nil {
		return nil, err
	}
	for _, n := range slices.Concat([]string{s.Owner, s.Tablespace}, s.Schemas, s.Extensions) {
		if n != "" {
			if err := role.CheckName("object", n); err != nil {
				return nil, err
			}
		}
	}
	name := Ident(s.Name)
	var steps []Step
	var schemas, exts []string
	if current == nil {
		sql := "CREATE DATABASE " + name
		var what []string
		if s.Owner != "" {
			sql += " OWNER " + Ident(s.Owner)
			what = append(what, "owner "+s.Owner)
		}
		if s.Encoding != "" || s.Locale != "" {
			sql += " TEMPLATE template0"
		}
		if s.Encoding != "" {
			sql += " ENCODING " + role.Literal(s.Encoding)
			what = append(what, "encoding "+s.Encoding)
		}
		if s.Locale != "" {
			sql += " LOCALE " + role.Literal(s.Locale)
			what = append(what, "locale "+s.Locale)
		}
		if s.Tablespace != "" {
			sql += " TABLESPACE " + Ident(s.Tablespace)
			what = append(what, "tablespace "+s.Tablespace)
		}
		desc := "create database " + s.Name
		if len(what) > 0 {
			desc += " (" + strings.Join(what, ", ") + ")"
		}
		steps = append(steps, Step{Desc: desc, SQL: sql})
	} else {
		if s.Encoding != "" && !strings.EqualFold(s.Encoding, current.Encoding) {
			return nil, fmt.Errorf("database %q has encoding %s, not %s: an encoding cannot change; dump it and restore it into a new database", s.Name, current.Encoding, s.Encoding)
		}
		if s.Locale != "" && (s.Locale != current.Collate || s.Locale != current.Ctype) {
			return nil, fmt.Errorf("database %q has locale %s, not %s: a locale cannot change; dump it and restore it into a new database", s.Name, current.Collate, s.Locale)
		}
		if s.Owner != "" && s.Owner != current.Owner {
			steps = append(steps, Step{Desc: "alter database " + s.Name + ": owner " + s.Owner, SQL: "ALTER DATABASE " + name + " OWNER TO " + Ident(s.Owner)})
		}
		if s.Tablespace != "" && s.Tablespace != current.Tablespace {
			steps = append(steps, Step{Desc: "alter database " + s.Name + ": tablespace " + s.Tablespace, SQL: "ALTER DATABASE " + name + " SET TABLESPACE " + Ident(s.Tablespace)})
		}
		schemas, exts = current.Schemas, current.Extensions
	}
	for _, sc := range s.Schemas {
		if !slices.Contains(schemas, sc) {
			schemas = append(schemas, sc)
			sql := "CREATE SCHEMA " + Ident(sc)
			if s.Owner != "" {
				sql += " AUTHORIZATION " + Ident(s.Owner)
			}
			steps = append(steps, Step{Desc: "create schema " + sc + " in database " + s.Name, SQL: sql, InDatabase: true})
		}
	}
	for _, e := range s.Extensions {
		if !slices.Contains(exts, e) {
			exts = append(exts, e)
			steps = append(steps, Step{Desc: "create extension " + e + " in database " + s.Name, SQL: "CREATE EXTENSION " + Ident(e) + " CASCADE", InDatabase: true})
		}
	}
	return steps, nil
}

// Connector opens a superuser connection to a database.
type Connector func(ctx context.Context, db string) (*pgx.Conn, error)

// Create makes the database s describes with its schemas and extensions.
// It is all-or-nothing: when a schema or an extension fails, the new
// database is dropped again.
func Create(ctx context.Context, conn *pgx.Conn, connect Connector, s Spec) ([]Step, error) {
	var n int
	if err := conn.QueryRow(ctx, `select count(*) from pg_database where datname = $1`, s.Name).Scan(&n); err != nil {
		return nil, err
	}
	if n > 0 {
		return nil, fmt.Errorf("%w: %q; change it with 'pgherd database alter'", ErrExists, s.Name)
	}
	steps, err := Plan(nil, s)
	if err != nil {
		return nil, err
	}
	return steps, Exec(ctx, conn, connect, s.Name, steps)
}

// Alter changes what differs between the database and s.
func Alter(ctx context.Context, conn *pgx.Conn, connect Connector, s Spec) ([]Step, error) {
	cur, err := Get(ctx, conn, s.Name, connect)
	if err != nil {
		return nil, err
	}
	steps, err := Plan(cur, s)
	if err != nil {
		return nil, err
	}
	return steps, Exec(ctx, conn, connect, s.Name, steps)
}

// Exec runs a plan: maintenance steps first, one by one (CREATE DATABASE
// cannot run in a transaction), then the in-database steps in one
// transaction. When the plan created the database and a later step fails,
// the database is dropped again.
func Exec(ctx context.Context, conn *pgx.Conn, connect Connector, name string, steps []Step) (err error) {
	created := false
	defer func() {
		if err != nil && created {
			if _, derr := conn.Exec(context.WithoutCancel(ctx), "DROP DATABASE "+Ident(name)); derr != nil {
				err = fmt.Errorf("%w (and dropping the half-made database %q failed too: %v)", err, name, derr)
			} else {
				err = fmt.Errorf("%w; database %q was dropped again", err, name)
			}
		}
	}()
	var inDB []Step
	for _, st := range steps {
		if st.InDatabase {
			inDB = append(inDB, st)
			continue
		}
		if _, err := conn.Exec(ctx, st.SQL); err != nil {
			return fmt.Errorf("%s: %w", st.Desc, err)
		}
		created = created || strings.HasPrefix(st.SQL, "CREATE DATABASE ")
	}
	if len(inDB) == 0 {
		return nil
	}
	c, err := connect(ctx, name)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		for _, st := range inDB {
			if _, err := tx.Exec(ctx, st.SQL); err != nil {
				return fmt.Errorf("%s: %w", st.Desc, err)
			}
		}
		return nil
	})
}

// Protected are the databases pgherd never drops: pgherd and Patroni
// connect to postgres, and the templates make every new database.
var Protected = []string{"postgres", "template0", "template1"}

// DropRequest says how to drop a database.
type DropRequest struct {
	Name string
	// Force ends the database's sessions (DROP DATABASE ... WITH (FORCE));
	// without it a database with sessions is refused.
	Force     bool
	MissingOK bool
}

// ErrHasSessions is returned when dropping a database that has sessions.
var ErrHasSessions = errors.New("database has sessions")

// Drop drops a database.
func Drop(ctx context.Context, conn *pgx.Conn, req DropRequest) (bool, error) {
	if slices.Contains(Protected, req.Name) {
		return false, fmt.Errorf("refusing to drop database %q: pgherd, Patroni and new databases depend on it", req.Name)
	}
	ds, err := query(ctx, conn, selectDatabases+` and d.datname = $1`, req.Name)
	if err != nil {
		return false, err
	}
	if len(ds) == 0 {
		if req.MissingOK {
			return false, nil
		}
		return false, fmt.Errorf("%w: %q; see 'pgherd database list'", ErrNotFound, req.Name)
	}
	if n := ds[0].Sessions; n > 0 && !req.Force {
		return false, fmt.Errorf("refusing to drop database %q: %w (%d); end them, or add --force to end them and drop it (DROP DATABASE ... WITH (FORCE))", req.Name, ErrHasSessions, n)
	}
	sql := "DROP DATABASE " + Ident(req.Name)
	if req.Force {
		sql += " WITH (FORCE)"
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		return false, fmt.Errorf("dropping database %q: %w", req.Name, err)
	}
	return true, nil
}
