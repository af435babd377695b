package role

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ErrExists is returned when creating a role that exists.
var ErrExists = errors.New("role already exists")

// Create makes the role s describes, with its memberships, in one
// transaction: on any error nothing is left behind.
func Create(ctx context.Context, conn *pgx.Conn, s Spec) ([]Step, error) {
	if _, err := Get(ctx, conn, s.Name); err == nil {
		return nil, fmt.Errorf("%w: %q; change it with 'pgherd role alter'", ErrExists, s.Name)
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	steps, err := Plan(nil, s)
	if err != nil {
		return nil, err
	}
	return steps, Exec(ctx, conn, steps)
}

// Alter changes what differs between the role and s, in one transaction,
// and returns what it changed (nothing when the role already is so).
func Alter(ctx context.Context, conn *pgx.Conn, s Spec) ([]Step, error) {
	cur, err := Get(ctx, conn, s.Name)
	if err != nil {
		return nil, err
	}
	steps, err := Plan(cur, s)
	if err != nil {
		return nil, err
	}
	return steps, Exec(ctx, conn, steps)
}

// Exec runs steps in one transaction. Errors name the step, never its SQL
// (which may hold a password verifier).
func Exec(ctx context.Context, conn *pgx.Conn, steps []Step) error {
	if len(steps) == 0 {
		return nil
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, st := range steps {
			if _, err := tx.Exec(ctx, st.SQL); err != nil {
				return fmt.Errorf("%s: %w; nothing was changed", st.Desc, err)
			}
		}
		return nil
	})
}

// DropRequest says how to drop a role.
type DropRequest struct {
	Name string
	// Protected maps the roles that must never be dropped (those pgherd
	// and Patroni connect as) to the reason.
	Protected map[string]string
	// ReassignTo gives the role's objects to another role first; DropOwned
	// drops them. Either also removes the role's privileges.
	ReassignTo string
	DropOwned  bool
	// ForEachDatabase runs fn on a connection to each database named.
	ForEachDatabase func(ctx context.Context, dbs []string, fn func(*pgx.Conn) error) error
	// MissingOK makes a missing role no error.
	MissingOK bool
}

// Dependents says, per database, how many objects a role owns and on how
// many it holds privileges. Database "" stands for shared objects
// (databases, tablespaces).
type Dependents map[string]struct{ Owned, Privileges int }

// String reads "owns 2 objects in database app, has privileges in database x".
func (d Dependents) String() string {
	dbs := make([]string, 0, len(d))
	for db := range d {
		dbs = append(dbs, db)
	}
	sort.Strings(dbs)
	var parts []string
	for _, db := range dbs {
		where := "database " + db
		if db == "" {
			where = "the instance (databases or tablespaces)"
		}
		if n := d[db].Owned; n > 0 {
			parts = append(parts, fmt.Sprintf("owns %d object(s) in %s", n, where))
		}
		if n := d[db].Privileges; n > 0 {
			parts = append(parts, fmt.Sprintf("holds privileges on %d object(s) in %s", n, where))
		}
	}
	return strings.Join(parts, ", ")
}

// FindDependents returns what keeps a role from being dropped, from
// pg_shdepend, which sees every database.
func FindDependents(ctx context.Context, conn *pgx.Conn, name string) (Dependents, error) {
	rows, err := conn.Query(ctx, `
select coalesce(d.datname, ''), s.deptype::text, count(*)
from pg_shdepend s join pg_roles r on r.oid = s.refobjid and s.refclassid = 'pg_authid'::regclass
left join pg_database d on d.oid = s.dbid
where r.rolname = $1 and s.deptype in ('o', 'a')
group by 1, 2`, name)
	if err != nil {
		return nil, fmt.Errorf("reading what role %q owns: %w", name, err)
	}
	deps := Dependents{}
	var db, kind string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&db, &kind, &n}, func() error {
		d := deps[db]
		if kind == "o" {
			d.Owned += n
		} else {
			d.Privileges += n
		}
		deps[db] = d
		return nil
	})
	return deps, err
}

// Drop drops a role. It refuses a protected role, and a role that owns
// objects or holds privileges unless ReassignTo or DropOwned says what to
// do with them; the refusal names the databases.
func Drop(ctx context.Context, conn *pgx.Conn, req DropRequest) (bool, error) {
	if why, ok := req.Protected[req.Name]; ok {
		return false, fmt.Errorf("refusing to drop role %q: %s", req.Name, why)
	}
	if req.ReassignTo != "" && req.DropOwned {
		return false, fmt.Errorf("--reassign-to and --drop-owned contradict each other: choose one")
	}
	if _, err := Get(ctx, conn, req.Name); err != nil {
		if errors.Is(err, ErrNotFound) && req.MissingOK {
			return false, nil
		}
		return false, err
	}
	if req.ReassignTo != "" {
		if _, err := Get(ctx, conn, req.ReassignTo); err != nil {
			return false, fmt.Errorf("--reassign-to: %w", err)
		}
	}
	deps, err := FindDependents(ctx, conn, req.Name)
	if err != nil {
		return false, err
	}
	if len(deps) > 0 {
		if req.ReassignTo == "" && !req.DropOwned {
			return false, fmt.Errorf("refusing to drop role %q: it %s; add --reassign-to ROLE to give them away or --drop-owned to drop them", req.Name, deps)
		}
		var dbs []string
		for db := range deps {
			if db != "" {
				dbs = append(dbs, db)
			}
		}
		sort.Strings(dbs)
		if _, shared := deps[""]; shared && len(dbs) == 0 {
			dbs = []string{""} // shared objects only: any database will do
		}
		sqls := []string{"DROP OWNED BY " + Ident(req.Name)}
		if req.ReassignTo != "" {
			sqls = append([]string{"REASSIGN OWNED BY " + Ident(req.Name) + " TO " + Ident(req.ReassignTo)}, sqls...)
		}
		err := req.ForEachDatabase(ctx, dbs, func(c *pgx.Conn) error {
			return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
				for _, sql := range sqls {
					if _, err := tx.Exec(ctx, sql); err != nil {
						return err
					}
				}
				return nil
			})
		})
		if err != nil {
			return false, fmt.Errorf("releasing what role %q owns: %w", req.Name, err)
		}
	}
	if _, err := conn.Exec(ctx, "DROP ROLE "+Ident(req.Name)); err != nil {
		return false, fmt.Errorf("dropping role %q: %w", req.Name, err)
	}
	return true, nil
}
