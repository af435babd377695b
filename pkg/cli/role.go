package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgherd/pgherd/pkg/role"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// roleOptions are the flags of role create and alter.
type roleOptions struct {
	instance     string
	format       string
	spec         role.Spec
	password     bool
	passwordFile string
	pgpass       bool
	connLimit    int
	inRoles      []string
	notInRoles   []string
	flags        map[string]*bool
}

func newCmdRole(f *Factory) *cobra.Command {
	var inst string
	cmd := &cobra.Command{
		Use:   "role",
		Short: "Create, change, inspect and drop the roles of an instance (a Patroni cluster's leader)",
	}
	cmd.PersistentFlags().StringVarP(&inst, "instance", "i", "", "instance (VERSION/NAME, or NAME when unique); any member of a Patroni cluster")
	cmd.AddCommand(newCmdRoleChange(f, &inst, "create"), newCmdRoleChange(f, &inst, "alter"),
		newCmdRoleGet(f, &inst), newCmdRoleList(f, &inst), newCmdRoleDrop(f, &inst), newCmdRolePrivileges(f, &inst))
	return cmd
}

var roleFlags = []struct{ name, help string }{
	{"login", "the role may log in (--login=false: it may not)"},
	{"superuser", "the role is a superuser"},
	{"createdb", "the role may create databases"},
	{"createrole", "the role may create roles"},
	{"replication", "the role may start streaming replication"},
	{"inherit", "the role inherits the privileges of the roles it is a member of"},
}

func newCmdRoleChange(f *Factory, inst *string, verb string) *cobra.Command {
	opts := &roleOptions{flags: map[string]*bool{}}
	short := "Create a role; its password is asked for (--password), or read from a file or stdin, never from argv"
	if verb == "alter" {
		short = "Change what differs of a role: attributes, password, memberships"
	}
	cmd := &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  exactArgs(1, "one role NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.instance = *inst
			if err := opts.fill(cmd.Flags(), args[0]); err != nil {
				return err
			}
			return runRoleChange(cmd.Context(), f, opts, verb)
		},
	}
	fl := cmd.Flags()
	for _, b := range roleFlags {
		opts.flags[b.name] = fl.Bool(b.name, false, b.help)
	}
	fl.IntVar(&opts.connLimit, "connection-limit", -1, "how many sessions the role may open at once (-1: no limit)")
	fl.StringVar(&opts.spec.ValidUntil, "valid-until", "", "the password is valid until then: a date, RFC 3339, or infinity")
	fl.StringArrayVar(&opts.inRoles, "in-role", nil, "make the role a member of this role (repeat the flag for more)")
	if verb == "alter" {
		fl.StringArrayVar(&opts.notInRoles, "not-in-role", nil, "end the role's membership of this role")
	}
	fl.BoolVar(&opts.password, "password", false, "set a password: asked on a terminal (twice, not echoed), else the first line of stdin")
	fl.StringVar(&opts.passwordFile, "password-file", "", "set the password held on the first line of this file")
	fl.BoolVar(&opts.pgpass, "pgpass", false, "keep the password in the .pgpass (0600) of the account PostgreSQL runs as")
	outputFlag(cmd, &opts.format)
	return cmd
}

func (o *roleOptions) fill(fl *pflag.FlagSet, name string) error {
	if err := checkOutput(o.format); err != nil {
		return err
	}
	if err := role.CheckName("role", name); err != nil {
		return usageError{err}
	}
	o.spec.Name = name
	set := map[string]**bool{"login": &o.spec.Login, "superuser": &o.spec.Superuser, "createdb": &o.spec.CreateDB,
		"createrole": &o.spec.CreateRole, "replication": &o.spec.Replication, "inherit": &o.spec.Inherit}
	for n, p := range set {
		if fl.Changed(n) {
			*p = o.flags[n]
		}
	}
	if fl.Changed("connection-limit") {
		o.spec.ConnectionLimit = &o.connLimit
	}
	o.spec.GrantRoles, o.spec.RevokeRoles = o.inRoles, o.notInRoles
	if o.password && o.passwordFile != "" {
		return usageError{fmt.Errorf("--password and --password-file contradict each other: choose one")}
	}
	if o.pgpass && !o.password && o.passwordFile == "" {
		return usageError{fmt.Errorf("--pgpass keeps a password: add --password or --password-file")}
	}
	return nil
}

func runRoleChange(ctx context.Context, f *Factory, opts *roleOptions, verb string) error {
	t, err := objectsTargetFor(ctx, f, opts.instance)
	if err != nil {
		return err
	}
	if why, ok := t.protected[opts.spec.Name]; ok && verb == "alter" {
		return fmt.Errorf("refusing to alter role %q: %s", opts.spec.Name, why)
	}
	if opts.password || opts.passwordFile != "" {
		pw, err := readPassword(f, opts.passwordFile, "role "+opts.spec.Name)
		if err != nil {
			return err
		}
		opts.spec.Password = role.NewSecret(pw)
	}
	conn, err := t.connect(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var steps []role.Step
	if verb == "create" {
		steps, err = role.Create(ctx, conn, opts.spec)
	} else {
		steps, err = role.Alter(ctx, conn, opts.spec)
	}
	if err != nil {
		return err
	}
	if opts.pgpass {
		pp, err := role.UserPgpass(t.env.User)
		if err == nil {
			err = pp.Set(t.inst.Port, opts.spec.Name, opts.spec.Password)
		}
		if err != nil {
			return fmt.Errorf("role %q is %sd but its password is not kept: %w", opts.spec.Name, verb, err)
		}
	}
	if opts.format != "" {
		r, err := role.Get(ctx, conn, opts.spec.Name)
		if err != nil {
			return err
		}
		return writeData(f.IO.Out, opts.format, struct {
			Role    *role.Role  `json:"role"`
			Changes []role.Step `json:"changes"`
		}{r, nonNil(steps)})
	}
	if len(steps) == 0 {
		fmt.Fprintf(f.IO.Out, "role %s: nothing to change\n", opts.spec.Name)
	}
	for _, s := range steps {
		fmt.Fprintln(f.IO.Out, s.Desc)
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func newCmdRoleGet(f *Factory, inst *string) *cobra.Command {
	return newCmdObjectsShow(f, inst, objectsShow[*role.Role]{
		use: "get NAME", short: "Describe a role: attributes, validity, memberships (never its password)",
		args: exactArgs(1, "one role NAME"),
		get: func(ctx context.Context, _ *objectsTarget, conn *pgx.Conn, args []string) (*role.Role, error) {
			return role.Get(ctx, conn, args[0])
		},
		table: func(r *role.Role) error { return writeRoles(f, []*role.Role{r}) },
	})
}

func newCmdRoleList(f *Factory, inst *string) *cobra.Command {
	return newCmdObjectsShow(f, inst, objectsShow[[]*role.Role]{
		use: "list", short: "List the roles of an instance (PostgreSQL's own pg_* roles left out)",
		args: exactArgs(0, "no arguments"),
		get: func(ctx context.Context, _ *objectsTarget, conn *pgx.Conn, _ []string) ([]*role.Role, error) {
			rs, err := role.List(ctx, conn)
			return nonNil(rs), err
		},
		table: func(rs []*role.Role) error { return writeRoles(f, rs) },
	})
}

func writeRoles(f *Factory, rs []*role.Role) error {
	rows := make([][]string, len(rs))
	for n, r := range rs {
		var attrs []string
		for _, a := range []struct {
			on   bool
			word string
		}{{r.Login, "login"}, {r.Superuser, "superuser"}, {r.CreateDB, "createdb"}, {r.CreateRole, "createrole"}, {r.Replication, "replication"}, {r.HasPassword, "password"}} {
			if a.on {
				attrs = append(attrs, a.word)
			}
		}
		valid, limit := "", ""
		if r.ValidUntil != nil {
			valid = *r.ValidUntil
		}
		if r.ConnectionLimit >= 0 {
			limit = strconv.Itoa(r.ConnectionLimit)
		}
		rows[n] = []string{r.Name, strings.Join(attrs, ","), limit, valid, strings.Join(r.InRoles, ",")}
	}
	return writeTable(f.IO, []string{"name", "attributes", "connection limit", "valid until", "member of"}, rows)
}

func newCmdRoleDrop(f *Factory, inst *string) *cobra.Command {
	req := role.DropRequest{}
	var ifExists bool
	var format string
	cmd := &cobra.Command{
		Use:   "drop NAME",
		Short: "Drop a role; one that owns objects needs --reassign-to ROLE or --drop-owned",
		Args:  exactArgs(1, "one role NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			req.Name, req.MissingOK = args[0], ifExists
			if err := checkOutput(format); err != nil {
				return err
			}
			if req.ReassignTo != "" && req.DropOwned {
				return usageError{fmt.Errorf("--reassign-to and --drop-owned contradict each other: choose one")}
			}
			return withObjectsConn(ctx, f, *inst, func(t *objectsTarget, conn *pgx.Conn) error {
				req.Protected, req.ForEachDatabase = t.protected, t.forEachDatabase
				dropped, err := role.Drop(ctx, conn, req)
				if err != nil {
					return err
				}
				if pp, err := role.UserPgpass(t.env.User); err == nil && dropped {
					if err := pp.Remove(t.inst.Port, req.Name); err != nil {
						return fmt.Errorf("role %q is dropped but its .pgpass line stays: %w", req.Name, err)
					}
				}
				return printDropped(f, format, "role", req.Name, dropped)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&req.ReassignTo, "reassign-to", "", "give the role's objects to this role first (REASSIGN OWNED), in every database")
	fl.BoolVar(&req.DropOwned, "drop-owned", false, "drop the role's objects and privileges first (DROP OWNED), in every database")
	fl.BoolVar(&ifExists, "if-exists", false, "a missing role is no error")
	outputFlag(cmd, &format)
	return cmd
}

func newCmdRolePrivileges(f *Factory, inst *string) *cobra.Command {
	var databases []string
	return newCmdObjectsShow(f, inst, objectsShow[[]role.Privilege]{
		use: "privileges NAME", short: "Show what a role may do, per database and schema (memberships and PUBLIC included)",
		args: exactArgs(1, "one role NAME"),
		flags: func(cmd *cobra.Command) {
			cmd.Flags().StringArrayVarP(&databases, "database", "d", nil, "only these databases (default: every one that accepts connections)")
		},
		get: func(ctx context.Context, t *objectsTarget, conn *pgx.Conn, args []string) ([]role.Privilege, error) {
			ps, err := role.Privileges(ctx, conn, args[0], databases, t.forEachDatabase)
			return nonNil(ps), err
		},
		table: func(ps []role.Privilege) error {
			rows := make([][]string, len(ps))
			for n, p := range ps {
				rows[n] = []string{p.Database, p.Schema, p.ObjectType, p.Object, strings.Join(p.Privileges, ",")}
			}
			return writeTable(f.IO, []string{"database", "schema", "type", "object", "privileges"}, rows)
		},
	})
}
