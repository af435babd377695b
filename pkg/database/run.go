package database

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Statement is the outcome of one SQL statement: its command tag and, for
// a query, its columns and rows as text (nil for NULL).
type Statement struct {
	Command string      `json:"command"`
	Columns []string    `json:"columns,omitempty"`
	Rows    [][]*string `json:"rows,omitempty"`
}

// RunResult is what SQL did in one database.
type RunResult struct {
	Database   string      `json:"database"`
	Statements []Statement `json:"statements"`
}

// Run runs sql (one or more statements, sent as one simple query: they
// form one transaction unless sql says otherwise) in each database, in
// order, and stops at the first failure, which names the database; the
// databases before it keep what sql did there.
func Run(ctx context.Context, connect Connector, databases []string, sql string) ([]RunResult, error) {
	var out []RunResult
	for _, db := range databases {
		c, err := connect(ctx, db)
		if err != nil {
			return out, err
		}
		results, err := c.PgConn().Exec(ctx, sql).ReadAll()
		c.Close(ctx)
		if err != nil {
			done := ""
			if len(out) > 0 {
				done = fmt.Sprintf(" (it ran in %d database(s) before)", len(out))
			}
			return out, fmt.Errorf("database %q: %w%s", db, err, done)
		}
		r := RunResult{Database: db, Statements: []Statement{}}
		for _, res := range results {
			st := Statement{Command: res.CommandTag.String()}
			for _, fd := range res.FieldDescriptions {
				st.Columns = append(st.Columns, fd.Name)
			}
			for _, row := range res.Rows {
				vals := make([]*string, len(row))
				for i, v := range row {
					if v != nil {
						s := string(v)
						vals[i] = &s
					}
				}
				st.Rows = append(st.Rows, vals)
			}
			r.Statements = append(r.Statements, st)
		}
		out = append(out, r)
	}
	return out, nil
}

// Connectable lists the databases that accept connections, templates
// left out: what 'database run --all' runs in.
func Connectable(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, `select datname from pg_database where datallowconn and not datistemplate order by 1`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
