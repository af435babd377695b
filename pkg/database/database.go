// Package database manages the databases of a running PostgreSQL instance:
// create (with schemas and extensions), alter, inspect, list, drop, run
// SQL in them, and dump and restore them with pg_dump and pg_restore.
// Names are always quoted as identifiers; creation is all-or-nothing.
package database

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/pgherd/pgherd/pkg/role"
)

// Errors callers may test for.
var (
	ErrNotFound = errors.New("database not found")
	ErrExists   = errors.New("database already exists")
)

// Database is a database as PostgreSQL has it.
type Database struct {
	Name       string   `json:"name"`
	Owner      string   `json:"owner"`
	Encoding   string   `json:"encoding"`
	Collate    string   `json:"collate"`
	Ctype      string   `json:"ctype"`
	Tablespace string   `json:"tablespace"`
	Size       int64    `json:"size_bytes"`
	Sessions   int      `json:"sessions"`
	Schemas    []string `json:"schemas,omitempty"`    // Get only: schemas but PostgreSQL's own
	Extensions []string `json:"extensions,omitempty"` // Get only: installed extensions
}

const selectDatabases = `
select d.datname, pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
       t.spcname, case when has_database_privilege(d.oid, 'CONNECT') then pg_database_size(d.oid) else 0 end,
       (select count(*) from pg_stat_activity a where a.datid = d.oid and a.pid <> pg_backend_pid())::int
from pg_database d join pg_tablespace t on t.oid = d.dattablespace
where not d.datistemplate`

// List returns every database but the templates, by name, in one query.
func List(ctx context.Context, conn *pgx.Conn) ([]*Database, error) {
	return query(ctx, conn, selectDatabases+` order by d.datname`)
}

func query(ctx context.Context, conn *pgx.Conn, sql string, args ...any) ([]*Database, error) {
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("reading databases: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Database, error) {
		d := &Database{}
		return d, row.Scan(&d.Name, &d.Owner, &d.Encoding, &d.Collate, &d.Ctype, &d.Tablespace, &d.Size, &d.Sessions)
	})
	if err != nil {
		return nil, fmt.Errorf("reading databases: %w", err)
	}
	return out, nil
}

// Get returns one database with its schemas and extensions (read through
// a connection to it that connect opens), or an error wrapping ErrNotFound.
func Get(ctx context.Context, conn *pgx.Conn, name string, connect func(ctx context.Context, db string) (*pgx.Conn, error)) (*Database, error) {
	ds, err := query(ctx, conn, selectDatabases+` and d.datname = $1`, name)
	if err != nil {
		return nil, err
	}
	if len(ds) == 0 {
		return nil, fmt.Errorf("%w: %q; see 'pgherd database list'", ErrNotFound, name)
	}
	d := ds[0]
	c, err := connect(ctx, name)
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	d.Schemas, d.Extensions, err = Contents(ctx, c)
	return d, err
}

// Contents reads the schemas (PostgreSQL's own left out) and extensions
// of the database conn is connected to.
func Contents(ctx context.Context, c *pgx.Conn) (schemas, extensions []string, err error) {
	err = c.QueryRow(ctx, `select
  array(select nspname::text from pg_namespace where nspname !~ '^pg_' and nspname <> 'information_schema' order by 1),
  array(select extname::text from pg_extension order by 1)`).Scan(&schemas, &extensions)
	if err != nil {
		return nil, nil, fmt.Errorf("reading schemas and extensions: %w", err)
	}
	return schemas, extensions, nil
}

// Ident quotes name as an SQL identifier.
func Ident(name string) string { return role.Ident(name) }
