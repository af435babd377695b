package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgherd/pgherd/pkg/database"
	"github.com/pgherd/pgherd/pkg/instance"
	"github.com/pgherd/pgherd/pkg/role"
	"github.com/pgherd/pgherd/pkg/site"
	"github.com/spf13/cobra"
)

func newCmdDatabase(f *Factory) *cobra.Command {
	var inst string
	cmd := &cobra.Command{
		Use:   "database",
		Short: "Create, change, inspect, drop, query, dump and restore the databases of an instance (a Patroni cluster's leader)",
	}
	cmd.PersistentFlags().StringVarP(&inst, "instance", "i", "", "instance (VERSION/NAME, or NAME when unique); any member of a Patroni cluster")
	cmd.AddCommand(newCmdDatabaseChange(f, &inst, "create"), newCmdDatabaseChange(f, &inst, "alter"),
		newCmdDatabaseGet(f, &inst), newCmdDatabaseList(f, &inst), newCmdDatabaseDrop(f, &inst),
		newCmdDatabaseRun(f, &inst), newCmdDatabaseDump(f, &inst), newCmdDatabaseDumps(f, &inst), newCmdDatabaseRestore(f, &inst))
	return cmd
}

func newCmdDatabaseChange(f *Factory, inst *string, verb string) *cobra.Command {
	var spec database.Spec
	var format string
	short := "Create a database, with its schemas and extensions; all or nothing"
	if verb == "alter" {
		short = "Change a database's owner or tablespace; add missing schemas and extensions"
	}
	cmd := &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  exactArgs(1, "one database NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			if err := role.CheckName("database", args[0]); err != nil {
				return usageError{err}
			}
			spec.Name = args[0]
			ctx := cmd.Context()
			return withObjectsConn(ctx, f, *inst, func(t *objectsTarget, conn *pgx.Conn) error {
				change := database.Create
				if verb == "alter" {
					change = database.Alter
				}
				steps, err := change(ctx, conn, t.connect, spec)
				if err != nil {
					return err
				}
				if format != "" {
					d, err := database.Get(ctx, conn, spec.Name, t.connect)
					if err != nil {
						return err
					}
					return writeData(f.IO.Out, format, struct {
						Database *database.Database `json:"database"`
						Changes  []database.Step    `json:"changes"`
					}{d, nonNil(steps)})
				}
				if len(steps) == 0 {
					fmt.Fprintf(f.IO.Out, "database %s: nothing to change\n", spec.Name)
				}
				for _, s := range steps {
					fmt.Fprintln(f.IO.Out, s.Desc)
				}
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&spec.Owner, "owner", "", "role that owns the database (and the schemas made with it)")
	if verb == "create" {
		fl.StringVar(&spec.Encoding, "encoding", "", "encoding (default: template1's)")
		fl.StringVar(&spec.Locale, "locale", "", "collation and character type (default: template1's)")
	}
	fl.StringVar(&spec.Tablespace, "tablespace", "", "tablespace of the database")
	fl.StringArrayVar(&spec.Schemas, "schema", nil, "schema to create in it when missing (repeat the flag for more)")
	fl.StringArrayVar(&spec.Extensions, "extension", nil, "extension to create in it when missing (repeat the flag for more)")
	outputFlag(cmd, &format)
	return cmd
}

func newCmdDatabaseGet(f *Factory, inst *string) *cobra.Command {
	return newCmdObjectsShow(f, inst, objectsShow[*database.Database]{
		use: "get NAME", short: "Describe a database: owner, encoding, locale, tablespace, size, sessions, schemas, extensions",
		args: exactArgs(1, "one database NAME"),
		get: func(ctx context.Context, t *objectsTarget, conn *pgx.Conn, args []string) (*database.Database, error) {
			return database.Get(ctx, conn, args[0], t.connect)
		},
		table: func(d *database.Database) error { return writeDatabases(f, []*database.Database{d}, true) },
	})
}

func newCmdDatabaseList(f *Factory, inst *string) *cobra.Command {
	return newCmdObjectsShow(f, inst, objectsShow[[]*database.Database]{
		use: "list", short: "List the databases of an instance (templates left out)",
		args: exactArgs(0, "no arguments"),
		get: func(ctx context.Context, _ *objectsTarget, conn *pgx.Conn, _ []string) ([]*database.Database, error) {
			ds, err := database.List(ctx, conn)
			return nonNil(ds), err
		},
		table: func(ds []*database.Database) error { return writeDatabases(f, ds, false) },
	})
}

func writeDatabases(f *Factory, ds []*database.Database, contents bool) error {
	headers := []string{"name", "owner", "encoding", "collate", "ctype", "tablespace", "size", "sessions"}
	if contents {
		headers = append(headers, "schemas", "extensions")
	}
	rows := make([][]string, len(ds))
	for n, d := range ds {
		rows[n] = []string{d.Name, d.Owner, d.Encoding, d.Collate, d.Ctype, d.Tablespace, strconv.FormatInt(d.Size, 10), strconv.Itoa(d.Sessions)}
		if contents {
			rows[n] = append(rows[n], strings.Join(d.Schemas, ","), strings.Join(d.Extensions, ","))
		}
	}
	return writeTable(f.IO, headers, rows)
}

func newCmdDatabaseDrop(f *Factory, inst *string) *cobra.Command {
	var req database.DropRequest
	var format string
	cmd := &cobra.Command{
		Use:   "drop NAME",
		Short: "Drop a database; one with sessions needs --force",
		Args:  exactArgs(1, "one database NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			req.Name = args[0]
			ctx := cmd.Context()
			return withObjectsConn(ctx, f, *inst, func(_ *objectsTarget, conn *pgx.Conn) error {
				dropped, err := database.Drop(ctx, conn, req)
				if err != nil {
					return err
				}
				return printDropped(f, format, "database", req.Name, dropped)
			})
		},
	}
	cmd.Flags().BoolVar(&req.Force, "force", false, "end the database's sessions and drop it (DROP DATABASE ... WITH (FORCE))")
	cmd.Flags().BoolVar(&req.MissingOK, "if-exists", false, "a missing database is no error")
	outputFlag(cmd, &format)
	return cmd
}

func newCmdDatabaseRun(f *Factory, inst *string) *cobra.Command {
	var dbs []string
	var all bool
	var file, format string
	cmd := &cobra.Command{
		Use:   "run [SQL]",
		Short: "Run SQL (an argument, --file FILE, or stdin) in databases (-d, or --all); one transaction per database unless the SQL says otherwise",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("%s takes the SQL as one argument (quote it)", cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			if all && len(dbs) > 0 {
				return usageError{errors.New("--all and --database contradict each other: choose one")}
			}
			if len(args) == 1 && file != "" {
				return usageError{errors.New("give the SQL as an argument or with --file, not both")}
			}
			sql, err := readSQL(f, args, file)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			return withObjectsConn(ctx, f, *inst, func(t *objectsTarget, conn *pgx.Conn) error {
				targets := dbs
				if all {
					if targets, err = database.Connectable(ctx, conn); err != nil {
						return err
					}
				}
				if len(targets) == 0 {
					targets = []string{"postgres"}
				}
				res, err := database.Run(ctx, t.connect, targets, sql)
				if format != "" {
					if werr := writeData(f.IO.Out, format, nonNil(res)); werr != nil {
						return werr
					}
				} else {
					writeRunResults(f, res, len(targets) > 1)
				}
				return err
			})
		},
	}
	cmd.Flags().StringArrayVarP(&dbs, "database", "d", nil, "database to run in (repeat; default: postgres)")
	cmd.Flags().BoolVar(&all, "all", false, "run in every database that accepts connections")
	cmd.Flags().StringVarP(&file, "file", "f", "", "read the SQL from this file")
	outputFlag(cmd, &format)
	return cmd
}

// readSQL takes the SQL from the argument, the file, or stdin.
func readSQL(f *Factory, args []string, file string) (string, error) {
	if len(args) == 1 {
		return args[0], nil
	}
	var b []byte
	var err error
	if file != "" && file != "-" {
		b, err = os.ReadFile(file)
	} else if f.IO.CanPrompt() && file == "" {
		return "", usageError{errors.New("no SQL: give it as an argument, with --file FILE, or on stdin")}
	} else {
		b, err = io.ReadAll(f.IO.In)
	}
	if err != nil {
		return "", fmt.Errorf("reading the SQL: %w", err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", usageError{errors.New("no SQL: give it as an argument, with --file FILE, or on stdin")}
	}
	return string(b), nil
}

func writeRunResults(f *Factory, res []database.RunResult, header bool) {
	for _, r := range res {
		if header {
			fmt.Fprintf(f.IO.Out, "-- database %s\n", r.Database)
		}
		for _, st := range r.Statements {
			if len(st.Columns) == 0 {
				fmt.Fprintln(f.IO.Out, st.Command)
				continue
			}
			rows := make([][]string, len(st.Rows))
			for n, row := range st.Rows {
				rows[n] = make([]string, len(row))
				for i, v := range row {
					if v != nil {
						rows[n][i] = *v
					}
				}
			}
			_ = writeTable(f.IO, st.Columns, rows)
		}
	}
}

// dumpServer says how pg_dump and pg_restore reach the target's primary,
// and where the named instance keeps its dumps.
func dumpServer(t *objectsTarget) (database.Server, string) {
	s := database.Server{BinDir: t.inst.BinDir, Host: t.conn.SocketDir, Port: t.conn.Port, User: t.conn.User, PassFile: t.conn.PassFile, Runner: t.env.Runner}
	return s, site.Path(t.env.Site.Prefix, t.env.Site.PostgreSQL.Dumpsdir, t.inst.Version, t.inst.Name)
}

func newCmdDatabaseDump(f *Factory, inst *string) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "dump NAME",
		Short: "Dump a database with pg_dump (custom format) into the instance's dump directory (site.yaml postgresql.dumps_directory)",
		Args:  exactArgs(1, "one database NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			ctx := cmd.Context()
			return withObjectsConn(ctx, f, *inst, func(t *objectsTarget, conn *pgx.Conn) error {
				if _, err := database.Get(ctx, conn, args[0], t.connect); err != nil {
					return err
				}
				s, dir := dumpServer(t)
				d, err := database.DumpTo(ctx, s, dir, t.env.User, args[0])
				if err != nil {
					return err
				}
				if format != "" {
					return writeData(f.IO.Out, format, d)
				}
				fmt.Fprintf(f.IO.Out, "database %s dumped into %s (%d bytes); restore it with 'pgherd database restore %s -i %s'\n", d.Database, d.Path, d.Size, d.ID, t.inst.ID())
				return nil
			})
		},
	}
	outputFlag(cmd, &format)
	return cmd
}

func newCmdDatabaseDumps(f *Factory, inst *string) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "dumps",
		Short: "List the dumps in the instance's dump directory, oldest first",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			if *inst == "" {
				return usageError{errors.New("this command needs an instance: add -i NAME")}
			}
			return withInstance(f, *inst, func(env *instance.Env, i *instance.Instance) error {
				ds, err := database.Dumps(site.Path(env.Site.Prefix, env.Site.PostgreSQL.Dumpsdir, i.Version, i.Name))
				if err != nil {
					return err
				}
				if format != "" {
					return writeData(f.IO.Out, format, ds)
				}
				rows := make([][]string, len(ds))
				for n, d := range ds {
					rows[n] = []string{d.ID, d.Database, d.Time.Format("2006-01-02 15:04:05Z"), strconv.FormatInt(d.Size, 10)}
				}
				return writeTable(f.IO, []string{"id", "database", "time", "size"}, rows)
			})
		},
	}
	outputFlag(cmd, &format)
	return cmd
}

func newCmdDatabaseRestore(f *Factory, inst *string) *cobra.Command {
	var target, format string
	cmd := &cobra.Command{
		Use:   "restore DUMP_ID",
		Short: "Restore a dump (see 'database dumps') into a new database: its own name, or --database NAME",
		Args:  exactArgs(1, "one DUMP_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			ctx := cmd.Context()
			return withObjectsConn(ctx, f, *inst, func(t *objectsTarget, conn *pgx.Conn) error {
				s, dir := dumpServer(t)
				d, err := database.FindDump(dir, args[0])
				if err != nil {
					return err
				}
				if err := database.Restore(ctx, s, conn, d, target); err != nil {
					return err
				}
				if target == "" {
					target = d.Database
				}
				if format != "" {
					return writeData(f.IO.Out, format, struct {
						Dump     string `json:"dump"`
						Database string `json:"database"`
					}{d.ID, target})
				}
				fmt.Fprintf(f.IO.Out, "dump %s restored into database %s\n", d.ID, target)
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&target, "database", "d", "", "restore into this new database (default: the dump's own, which must not exist)")
	outputFlag(cmd, &format)
	return cmd
}
