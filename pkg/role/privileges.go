package role

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Privilege is what a role may do on one object: a database, a schema or
// a table (view, materialized view, foreign table), as PostgreSQL's
// has_*_privilege functions answer, so memberships and PUBLIC count.
type Privilege struct {
	Database   string   `json:"database"`
	Schema     string   `json:"schema,omitempty"`
	ObjectType string   `json:"object_type"`
	Object     string   `json:"object"`
	Privileges []string `json:"privileges"`
}

// Privileges lists what role name may do in every database that accepts
// connections (or only in databases, when given). forEach runs fn on a
// connection to each database.
func Privileges(ctx context.Context, conn *pgx.Conn, name string, databases []string,
	forEach func(context.Context, []string, func(*pgx.Conn) error) error) ([]Privilege, error) {
	if _, err := Get(ctx, conn, name); err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, `
select d.datname, array(select p from unnest(array['CONNECT', 'CREATE', 'TEMPORARY']) p
                        where has_database_privilege($1, d.oid, p))
from pg_database d
where d.datallowconn and not d.datistemplate and (coalesce(cardinality($2::text[]), 0) = 0 or d.datname = any($2))
order by 1`, name, databases)
	if err != nil {
		return nil, fmt.Errorf("reading database privileges: %w", err)
	}
	var out []Privilege
	var dbs []string
	var db string
	var privs []string
	if _, err := pgx.ForEachRow(rows, []any{&db, &privs}, func() error {
		out = append(out, Privilege{Database: db, ObjectType: "database", Object: db, Privileges: privs})
		for _, p := range privs {
			if p == "CONNECT" {
				dbs = append(dbs, db)
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading database privileges: %w", err)
	}
	for _, want := range databases {
		found := false
		for _, p := range out {
			found = found || p.Database == want
		}
		if !found {
			return nil, fmt.Errorf("database %q does not exist or accepts no connections; see 'pgherd database list'", want)
		}
	}
	err = forEach(ctx, dbs, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `
with objs as (
  select n.nspname as schema, 'schema' as type, n.nspname as object,
         array(select p from unnest(array['USAGE', 'CREATE']) p where has_schema_privilege($1, n.oid, p)) as privs
  from pg_namespace n
  where n.nspname !~ '^pg_' and n.nspname <> 'information_schema'
  union all
  select n.nspname, case c.relkind when 'v' then 'view' when 'm' then 'materialized view'
                                   when 'f' then 'foreign table' else 'table' end, c.relname,
         array(select p from unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p
               where has_table_privilege($1, c.oid, p))
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p', 'v', 'm', 'f') and n.nspname !~ '^pg_' and n.nspname <> 'information_schema')
select current_database(), schema, type, object, privs from objs where cardinality(privs) > 0
order by schema, type = 'schema' desc, object`, name)
		if err != nil {
			return err
		}
		var p Privilege
		_, err = pgx.ForEachRow(rows, []any{&p.Database, &p.Schema, &p.ObjectType, &p.Object, &p.Privileges}, func() error {
			out = append(out, p)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the privileges of role %q: %w", name, err)
	}
	return out, nil
}
