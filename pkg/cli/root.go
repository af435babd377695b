// Package cli holds pgherd's cobra commands: one file per noun. A command
// parses its flags into an options struct, calls one domain function and
// renders the result; nothing here knows a file format.
package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"

	"github.com/pgherd/pgherd/pkg/iostreams"
	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitError   = 1
	ExitUsage   = 2
	ExitStopped = 3
)

// ExitCodeError ends a command with a given exit code and, when Err is set,
// prints it.
type ExitCodeError struct {
	Code int
	Err  error
}

func (e *ExitCodeError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitCodeError) Unwrap() error { return e.Err }

// usageError marks bad arguments or flags (exit code 2).
type usageError struct{ error }

// Main runs pgherd with args and returns its exit code. It is the only place
// that maps errors to exit codes.
func Main(ctx context.Context, ios *iostreams.IOStreams, args []string) int {
	f := NewFactory(ios)
	root := newCmdRoot(f, args)
	root.SetArgs(args)
	root.SetIn(ios.In)
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ec *ExitCodeError
	if errors.As(err, &ec) {
		if ec.Err != nil {
			fmt.Fprintf(ios.ErrOut, "Error: %s\n", ec.Err)
		}
		return ec.Code
	}
	fmt.Fprintf(ios.ErrOut, "Error: %s\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		return ee.ExitCode()
	}
	return ExitError
}

// noun is a top-level command and what builds it.
type noun struct {
	name  string
	build func(*Factory) *cobra.Command
}

// nouns are the top-level commands, in the order they are added.
var nouns = []noun{
	{"site", newCmdSite},
	{"instance", newCmdInstance},
	{"pgconf", newCmdPgconf},
	{"patroni", newCmdPatroni},
	{"dcs", newCmdDcs},
	{"witness", newCmdWitness},
	{"schema", newCmdSchema},
	{"role", newCmdRole},
	{"database", newCmdDatabase},
	{"pghba", newCmdPghba},
	{"apply", newCmdApply},
}

// nounOf returns the noun that args run: their first word after the
// root's own flags (-q, --site FILE...), when it names a noun; else ""
// (no argument, help, completion, a mistake, or a flag that cobra alone
// should read, such as -qL debug).
func nounOf(root *cobra.Command, args []string) string {
	flags := root.PersistentFlags()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || a == "-" {
			return ""
		}
		if !strings.HasPrefix(a, "-") {
			for _, n := range nouns {
				if n.name == a {
					return a
				}
			}
			return ""
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		var fl *pflag.Flag
		switch {
		case strings.HasPrefix(a, "--"):
			fl = flags.Lookup(name)
		case len(name) == 1:
			fl = flags.ShorthandLookup(name)
		}
		if fl == nil {
			return ""
		}
		if !hasValue && fl.NoOptDefVal == "" {
			i++ // the flag's value is the next word
		}
	}
	return ""
}

// NewCmdRoot builds the whole command tree.
func NewCmdRoot(f *Factory) *cobra.Command { return newCmdRoot(f, nil) }

// newCmdRoot builds the root and the branch of the noun that args run, or
// every noun when they run none (nil args: the whole tree). A command runs
// in its own branch, and building the ten others (with the version and the
// completion command, which only the root's own flags and commands use)
// took a third of the start of every command. The branch built alone is
// the same as in the whole tree.
func newCmdRoot(f *Factory, args []string) *cobra.Command {
	var logLevel string
	var quiet bool
	root := &cobra.Command{
		Use:           "pgherd",
		Short:         "Run PostgreSQL instances, Patroni clusters and their DCS the way a careful DBA would",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			level, err := logging.ParseLevel(logLevel)
			if err != nil {
				return usageError{err}
			}
			if quiet && level < slog.LevelWarn {
				level = slog.LevelWarn
			}
			cmd.SetContext(logging.With(cmd.Context(), logging.New(f.IO.ErrOut, level)))
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&f.SiteFile, "site", "", "site settings file (default: $PGHERD_SITE, $XDG_CONFIG_HOME/pgherd/site.yaml, /etc/pgherd/site.yaml)")
	pf.StringVarP(&logLevel, "log-level", "L", "info", "log level: debug, info, warning or error")
	pf.BoolVarP(&quiet, "quiet", "q", false, "print warnings and errors only")
	only := nounOf(root, args)
	for _, n := range nouns {
		if only == "" || n.name == only {
			root.AddCommand(n.build(f))
		}
	}
	if only == "" {
		root.Version = buildVersion()
		root.SetVersionTemplate("pgherd {{.Version}}\n")
		root.InitDefaultCompletionCmd()
	} else {
		root.CompletionOptions.DisableDefaultCmd = true
	}
	requireSubcommands(root)
	addCompletions(f, root)
	return root
}

// requireSubcommands makes every command that only groups others refuse an
// unknown subcommand with a usage error and a suggestion, instead of
// printing its help and exiting 0; without arguments it still prints help.
func requireSubcommands(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		requireSubcommands(c)
	}
	if !cmd.HasSubCommands() || cmd.Runnable() {
		return
	}
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		return usageError{unknownCommand(cmd, args[0])}
	}
}

// unknownCommand says that name is not a subcommand of cmd and suggests the
// nearest ones.
func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	cmd.SuggestionsMinimumDistance = 2
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		return fmt.Errorf("%s; did you mean %s?", msg, strings.Join(s, " or "))
	}
	return fmt.Errorf("%s; see '%s --help'", msg, cmd.CommandPath())
}

// rangeOfArgs is cobra.RangeArgs with a usage error and a clearer message.
func rangeOfArgs(lo, hi int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usageError{fmt.Errorf("%s expects %s (got %d arguments); see %s --help", cmd.CommandPath(), what, len(args), cmd.CommandPath())}
		}
		return nil
	}
}

// maxArgs is cobra.MaximumNArgs with a usage error and a clearer message.
func maxArgs(n int, what string) cobra.PositionalArgs { return rangeOfArgs(0, n, what) }

// exactArgs is cobra.ExactArgs with a usage error and a clearer message.
func exactArgs(n int, what string) cobra.PositionalArgs { return rangeOfArgs(n, n, what) }
