package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/pgherd/pgherd/pkg/hba"
	"github.com/pgherd/pgherd/pkg/instance"
	"github.com/pgherd/pgherd/pkg/safefs"
	"github.com/spf13/cobra"
)

func newCmdPghba(f *Factory) *cobra.Command {
	var inst string
	cmd := &cobra.Command{
		Use:   "pghba",
		Short: "List, add and remove pg_hba.conf entries, keeping the file's comments and order, then reload",
	}
	cmd.PersistentFlags().StringVarP(&inst, "instance", "i", "", "instance (VERSION/NAME, or NAME when unique)")
	cmd.AddCommand(newCmdPghbaList(f, &inst), newCmdPghbaChange(f, &inst, "add"), newCmdPghbaChange(f, &inst, "remove"))
	return cmd
}

// hbaTarget is the pg_hba.conf of a plain instance, with pgherd's own
// superuser connection as the probe no edit may lock out.
func hbaTarget(env *instance.Env, i *instance.Instance) hba.Target {
	path := filepath.Join(i.DataDir, "pg_hba.conf")
	t := hba.Target{
		Read:  func() (string, error) { return safefs.ReadOwned(path, env.User.FileOwner()) },
		Write: func(s string) error { return safefs.WriteOwned(path, []byte(s), env.User.FileOwner()) },
		Probes: []hba.Probe{{Local: true, Database: "postgres", User: env.Site.PostgreSQL.Surole.Name,
			Why: "pgherd's own superuser connection"}},
	}
	if i.State() == instance.Started {
		t.Errors = func(ctx context.Context) ([]string, error) { return i.HBAFileErrors(ctx, env) }
		t.Reload = func(ctx context.Context) error { return instance.Reload(ctx, env, i) }
	}
	return t
}

// withHba resolves the instance of a pghba verb and its target: its own
// pg_hba.conf, or its Patroni cluster's pg_hba.
func withHba(ctx context.Context, f *Factory, ref string, fn func(*instance.Instance, hba.Target) error) error {
	if ref == "" {
		return usageError{errors.New("this command needs an instance: add -i NAME")}
	}
	return withInstance(f, ref, func(env *instance.Env, i *instance.Instance) error {
		t, err := anyHbaTarget(ctx, env, i)
		if err != nil {
			return err
		}
		return fn(i, t)
	})
}

// anyHbaTarget is the pg_hba of a plain instance or of a Patroni member's
// cluster (one list for every member: see instance.PatroniHBATarget).
func anyHbaTarget(ctx context.Context, env *instance.Env, i *instance.Instance) (hba.Target, error) {
	if i.PatroniManaged() {
		return instance.PatroniHBATarget(ctx, env, i)
	}
	return hbaTarget(env, i), nil
}

func newCmdPghbaList(f *Factory, inst *string) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the entries of pg_hba.conf in the order PostgreSQL tries them",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			return withHba(cmd.Context(), f, *inst, func(_ *instance.Instance, t hba.Target) error {
				text, err := t.Read()
				if err != nil {
					return err
				}
				file, err := hba.Parse(text)
				if err != nil {
					return err
				}
				es := file.Entries()
				if format != "" {
					return writeData(f.IO.Out, format, es)
				}
				rows := make([][]string, len(es))
				for n, e := range es {
					rows[n] = []string{strconv.Itoa(e.Line), e.Type, e.Database, e.User, e.Address, e.Method, e.Options}
				}
				return writeTable(f.IO, []string{"line", "type", "database", "user", "address", "method", "options"}, rows)
			})
		},
	}
	outputFlag(cmd, &format)
	return cmd
}

// hbaFlags are the fields of an entry given on the command line.
type hbaFlags struct {
	typ, address, method string
	databases, users     []string
	first                bool
	format               string
}

// hbaChangeOutput is -o json of pghba add and remove
// (pgherd.pghba-change/v1).
type hbaChangeOutput struct {
	Instance string         `json:"instance"`
	Action   string         `json:"action"` // add or remove
	Entry    hbaGivenOutput `json:"entry"`
	Changed  bool           `json:"changed"` // false: the entry was already there
}

// hbaGivenOutput is the entry as the flags give it: no line, no options;
// Method is "" for a remove without --method.
type hbaGivenOutput struct {
	Type     string `json:"type"`
	Database string `json:"database"`
	User     string `json:"user"`
	Address  string `json:"address"`
	Method   string `json:"method"`
}

func (o *hbaFlags) entry() hba.Entry {
	return hba.Entry{Type: o.typ, Database: hba.QuoteNames(o.databases), User: hba.QuoteNames(o.users), Address: o.address, Method: o.method}
}

func newCmdPghbaChange(f *Factory, inst *string, verb string) *cobra.Command {
	o := &hbaFlags{}
	short := "Add an entry (after the others, or --first), check it with PostgreSQL, reload"
	if verb == "remove" {
		short = "Remove the entries with these fields (--method: only with this method), reload"
	}
	cmd := &cobra.Command{
		Use:   verb,
		Short: short,
		Args:  exactArgs(0, "no arguments, only flags"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(o.format); err != nil {
				return err
			}
			e := o.entry()
			if verb == "add" || e.Method != "" {
				if err := hba.Check(e); err != nil {
					return usageError{err}
				}
			} else if err := hba.Check(hba.Entry{Type: e.Type, Database: e.Database, User: e.User, Address: e.Address, Method: "trust"}); err != nil {
				return usageError{err}
			}
			return withHba(cmd.Context(), f, *inst, func(i *instance.Instance, t hba.Target) error {
				err := hba.Edit(cmd.Context(), t, func(file *hba.File) error {
					if verb == "add" {
						if !file.Add(e, o.first) {
							return hba.ErrNoChange
						}
						return nil
					}
					if file.Remove(e) == 0 {
						return fmt.Errorf("no entry %q in the pg_hba.conf of %s; see 'pgherd pghba list -i %s'", e.Format(), i.ID(), i.ID())
					}
					return nil
				})
				changed := !errors.Is(err, hba.ErrNoChange)
				if err != nil && changed {
					return err
				}
				if o.format != "" {
					return writeData(f.IO.Out, o.format, hbaChangeOutput{Instance: i.ID(), Action: verb, Changed: changed,
						Entry: hbaGivenOutput{Type: e.Type, Database: e.Database, User: e.User, Address: e.Address, Method: e.Method}})
				}
				if !changed {
					fmt.Fprintf(f.IO.Out, "entry already there: %s\n", e.Format())
					return nil
				}
				fmt.Fprintf(f.IO.Out, "%s %s: %s\n", map[string]string{"add": "added to", "remove": "removed from"}[verb], i.ID(), e.Format())
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.typ, "type", "host", "connection type: local, host, hostssl or hostnossl (hostgssenc, hostnogssenc)")
	fl.StringArrayVar(&o.databases, "database", []string{"all"}, "database (all, replication, sameuser, or a name; repeat for more)")
	fl.StringArrayVar(&o.users, "user", []string{"all"}, "role (all, +GROUP, or a name; repeat for more)")
	fl.StringVar(&o.address, "address", "", "client network as CIDR (10.0.0.0/24, 192.0.2.7/32), all, samehost or samenet; not for local")
	fl.StringVar(&o.method, "method", "", "authentication method: scram-sha-256, md5, peer, trust, reject, cert, ...")
	if verb == "add" {
		fl.BoolVar(&o.first, "first", false, "put the entry before all others (the first matching entry wins)")
	}
	outputFlag(cmd, &o.format)
	return cmd
}
