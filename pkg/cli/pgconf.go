package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pgherd/pgherd/pkg/instance"
	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/pgconf"
	"github.com/spf13/cobra"
)

// pgconfOptions are the flags every pgconf verb shares.
type pgconfOptions struct {
	instance string
	format   string
	dryRun   bool
	yes, no  bool
	nonInter bool
}

func newCmdPgconf(f *Factory) *cobra.Command {
	opts := &pgconfOptions{}
	cmd := &cobra.Command{
		Use:   "pgconf",
		Short: "Show and change postgresql.conf, reloading or restarting as PostgreSQL requires",
	}
	cmd.PersistentFlags().StringVarP(&opts.instance, "instance", "i", "", "instance (VERSION/NAME, or NAME when unique)")
	cmd.AddCommand(newCmdPgconfShow(f, opts), newCmdPgconfSet(f, opts), newCmdPgconfRemove(f, opts), newCmdPgconfEdit(f, opts))
	return cmd
}

// changeFlags adds the flags of the verbs that change the configuration.
func changeFlags(cmd *cobra.Command, opts *pgconfOptions) {
	fl := cmd.Flags()
	fl.BoolVar(&opts.dryRun, "dry-run", false, "validate and print the changes; write nothing")
	fl.BoolVarP(&opts.yes, "yes", "y", false, "restart without asking when a change needs it")
	fl.BoolVar(&opts.no, "no", false, "never restart; leave the restart pending")
	fl.BoolVar(&opts.nonInter, "non-interactive", false, "never ask; leave a needed restart pending")
	outputFlag(cmd, &opts.format)
}

func (o *pgconfOptions) check() error {
	if o.instance == "" {
		return usageError{errors.New("pgconf needs an instance: add -i NAME")}
	}
	if o.yes && o.no {
		return usageError{errors.New("--yes and --no contradict each other: choose one")}
	}
	return checkOutput(o.format)
}

func newCmdPgconfShow(f *Factory, opts *pgconfOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show [PARAM...]",
		Short: "Show parameters: value in effect, the file and line that set it, pending restart",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.check(); err != nil {
				return err
			}
			return withInstance(f, opts.instance, func(env *instance.Env, i *instance.Instance) error {
				t, err := instance.ConfTarget(env, i, false)
				if err != nil {
					return err
				}
				params, err := pgconf.Show(cmd.Context(), t, args)
				if err != nil {
					return err
				}
				if opts.format != "" {
					return writeData(f.IO.Out, opts.format, params)
				}
				rows := make([][]string, len(params))
				for n, p := range params {
					value, where := "", ""
					if p.Value != nil {
						value = *p.Value
					}
					if p.SetIn != nil {
						where = p.SetIn.File + ":" + strconv.Itoa(p.SetIn.Line)
					}
					rows[n] = []string{p.Name, value, where, p.Context, strconv.FormatBool(p.PendingRestart)}
				}
				return writeTable(f.IO, []string{"name", "value", "set in", "context", "pending restart"}, rows)
			})
		},
	}
	outputFlag(cmd, &opts.format)
	return cmd
}

func newCmdPgconfSet(f *Factory, opts *pgconfOptions) *cobra.Command {
	return newCmdPgconfChange(f, opts, "set PARAM=VALUE...",
		"Set parameters in place in postgresql.conf, then reload (or restart) as needed",
		pgconf.ParseAssignment)
}

func newCmdPgconfRemove(f *Factory, opts *pgconfOptions) *cobra.Command {
	return newCmdPgconfChange(f, opts, "remove PARAM...",
		"Comment out parameters in postgresql.conf, then reload (or restart) as needed",
		func(a string) (pgconf.Change, error) {
			return pgconf.Change{Name: a, Remove: true}, pgconf.CheckName(a)
		})
}

// newCmdPgconfChange builds set and remove: each argument becomes a change
// through parse, then the changes go through Patroni or pgconf.Apply.
func newCmdPgconfChange(f *Factory, opts *pgconfOptions, use, short string, parse func(string) (pgconf.Change, error)) *cobra.Command {
	what := strings.TrimSuffix(strings.Fields(use)[1], "...")
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("%s expects at least one %s", cmd.CommandPath(), what)}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.check(); err != nil {
				return err
			}
			changes := make([]pgconf.Change, len(args))
			for n, a := range args {
				c, err := parse(a)
				if err != nil {
					return usageError{err}
				}
				changes[n] = c
			}
			return withInstance(f, opts.instance, func(env *instance.Env, i *instance.Instance) error {
				if i.PatroniManaged() {
					return patroniPgconf(cmd.Context(), f, opts, env, i, changes)
				}
				return runPgconfChange(cmd.Context(), f, opts, env, i, func(ctx context.Context, t pgconf.Target) (*pgconf.Result, error) {
					return pgconf.Apply(ctx, t, changes, opts.applyOptions(f))
				})
			})
		},
	}
	changeFlags(cmd, opts)
	return cmd
}

func newCmdPgconfEdit(f *Factory, opts *pgconfOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "edit",
		Short: "Edit postgresql.conf in $VISUAL (else $EDITOR, else vi), then validate and apply it",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.check(); err != nil {
				return err
			}
			return withInstance(f, opts.instance, func(env *instance.Env, i *instance.Instance) error {
				return runPgconfChange(cmd.Context(), f, opts, env, i, func(ctx context.Context, t pgconf.Target) (*pgconf.Result, error) {
					return editConf(ctx, f, t, opts)
				})
			})
		},
	}
	changeFlags(cmd, opts)
	return cmd
}

// editConf lets a person edit a copy of the main file, then applies it.
// Messages about the copy name its lines; on a terminal a refused copy can
// be edited again. The copy is removed whatever happens.
func editConf(ctx context.Context, f *Factory, t pgconf.Target, opts *pgconfOptions) (*pgconf.Result, error) {
	orig, err := os.ReadFile(t.ConfigFile)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp("", "pgherd-"+filepath.Base(t.ConfigFile)+"-*.conf")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(orig)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	t.EditedAs = "your edited copy of " + t.ConfigFile
	for {
		if err := runEditor(ctx, f, tmp.Name()); err != nil {
			return nil, fmt.Errorf("%w; postgresql.conf is unchanged", err)
		}
		edited, err := os.ReadFile(tmp.Name())
		if err != nil {
			return nil, err
		}
		if bytes.Equal(edited, orig) {
			logging.From(ctx).Info("no change")
			return &pgconf.Result{Instance: t.Name, Changes: []pgconf.ParamChange{}, Restart: []string{}}, nil
		}
		t.Config = nil // read the files again: they may have changed while the editor was open
		res, err := pgconf.ApplyEdit(ctx, t, edited, opts.applyOptions(f))
		if !errors.Is(err, pgconf.ErrRefused) && !errors.Is(err, pgconf.ErrRolledBack) || !f.IO.CanPrompt() {
			return res, err
		}
		// On a terminal the copy is not lost: the person may fix it.
		fmt.Fprintf(f.IO.ErrOut, "%s; postgresql.conf is unchanged\n", err)
		if !confirm(f.IO, "Edit your copy again?") {
			return nil, errors.New("edit abandoned: postgresql.conf is unchanged")
		}
	}
}

// runPgconfChange applies a change, prints it, and restarts when asked to.
func runPgconfChange(ctx context.Context, f *Factory, opts *pgconfOptions, env *instance.Env, i *instance.Instance,
	apply func(context.Context, pgconf.Target) (*pgconf.Result, error)) error {
	t, err := instance.ConfTarget(env, i, true)
	if err != nil {
		return err
	}
	res, err := apply(ctx, t)
	if errors.Is(err, pgconf.ErrRefused) {
		return fmt.Errorf("%w; nothing was written", err)
	}
	if err != nil {
		return err
	}
	if opts.format != "" {
		if err := writeData(f.IO.Out, opts.format, res); err != nil {
			return err
		}
	}
	if opts.dryRun || len(res.Restart) == 0 {
		return nil
	}
	log := logging.From(ctx)
	restart := opts.yes
	if !opts.yes && !opts.no && !opts.nonInter && f.IO.CanPrompt() {
		restart = confirm(f.IO, "PostgreSQL needs to be restarted; restart now?")
	}
	if !restart {
		log.Info(fmt.Sprintf("instance %s keeps running with the old values; restart it with 'pgherd instance restart %s'", i.ID(), i.ID()))
		return nil
	}
	return instance.Restart(ctx, env, i)
}

// applyOptions prints the changes as soon as they are written.
func (o *pgconfOptions) applyOptions(f *Factory) pgconf.Options {
	opts := pgconf.Options{DryRun: o.dryRun}
	if o.format == "" {
		opts.Written = func(res *pgconf.Result) { printChanges(f, res) }
	}
	return opts
}

// printChanges writes "PARAM: OLD -> NEW" for each change.
func printChanges(f *Factory, res *pgconf.Result) {
	show := func(v *string) string {
		if v == nil {
			return "(not set)"
		}
		return *v
	}
	for _, ch := range res.Changes {
		fmt.Fprintf(f.IO.Out, "%s: %s -> %s\n", ch.Name, show(ch.Old), show(ch.New))
	}
	if !res.DryRun {
		return
	}
	fmt.Fprintln(f.IO.Out, "dry run: nothing was written")
	byEffect := map[pgconf.Effect][]string{}
	for _, ch := range res.Changes {
		byEffect[ch.Effect] = append(byEffect[ch.Effect], ch.Name)
	}
	for _, e := range []struct {
		effect pgconf.Effect
		say    string
	}{
		{pgconf.EffectReload, "a reload would apply"},
		{pgconf.EffectNewSessions, "a reload would apply, for new sessions only,"},
		{pgconf.EffectRestart, "a restart would be needed for"},
		{pgconf.EffectOverridden, "another file would still win for"},
		{pgconf.EffectNextStart, "the next start would apply"},
	} {
		if names := byEffect[e.effect]; len(names) > 0 {
			fmt.Fprintf(f.IO.Out, "dry run: %s %s\n", e.say, strings.Join(names, ", "))
		}
	}
}

// runEditor edits path in $VISUAL, else $EDITOR, else vi.
func runEditor(ctx context.Context, f *Factory, path string) error {
	editor := os.Getenv("VISUAL")
	if editor == "" {
		editor = os.Getenv("EDITOR")
	}
	if editor == "" {
		editor = "vi"
	}
	// Through sh, as $EDITOR may carry arguments ("emacs -nw"); the editor
	// gets the terminal itself, not a pipe.
	ed := exec.CommandContext(ctx, "sh", "-c", editor+` "$1"`, "sh", path)
	ed.Stdin, ed.Stdout, ed.Stderr = f.IO.In, f.IO.Out, f.IO.ErrOut
	if err := ed.Run(); err != nil {
		return fmt.Errorf("editor %q failed: %w", editor, err)
	}
	return nil
}
