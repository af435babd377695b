package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"

	"github.com/pgherd/pgherd/pkg/instance"
	"github.com/spf13/cobra"
)

func newCmdInstanceGet(f *Factory) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Describe an instance: state, paths, settings",
		Args:  exactArgs(1, "one instance NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			return withInstance(f, args[0], func(env *instance.Env, i *instance.Instance) error {
				d, err := instance.Describe(cmd.Context(), env, i)
				if err != nil {
					return err
				}
				if format != "" {
					return writeData(f.IO.Out, format, d)
				}
				return writeTable(f.IO, []string{"name", "version", "port", "state", "pending restart", "data directory"},
					[][]string{{d.Name, d.Version, strconv.Itoa(d.Port), string(d.State), strconv.FormatBool(d.PendingRestart), d.DataDirectory}})
			})
		},
	}
	outputFlag(cmd, &format)
	return cmd
}

// listItem is one element of 'instance list -o json'.
type listItem struct {
	Name          string         `json:"name"`
	Version       string         `json:"version"`
	Port          int            `json:"port"`
	DataDirectory string         `json:"data_directory"`
	State         instance.State `json:"state"`
}

func newCmdInstanceList(f *Factory) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List instances",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			env, err := f.InstanceEnv()
			if err != nil {
				return err
			}
			all, err := instance.List(env)
			if err != nil {
				return err
			}
			items := make([]listItem, 0, len(all))
			rows := make([][]string, 0, len(all))
			for _, i := range all {
				it := listItem{Name: i.Name, Version: i.Version, Port: i.Port, DataDirectory: i.DataDir, State: i.State()}
				items = append(items, it)
				rows = append(rows, []string{it.Name, it.Version, strconv.Itoa(it.Port), string(it.State), it.DataDirectory})
			}
			if format != "" {
				return writeData(f.IO.Out, format, items)
			}
			return writeTable(f.IO, []string{"name", "version", "port", "state", "data directory"}, rows)
		},
	}
	outputFlag(cmd, &format)
	return cmd
}

func newCmdInstanceLogs(f *Factory) *cobra.Command {
	var follow bool
	var lines int
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print the instance's current PostgreSQL log file",
		Args:  exactArgs(1, "one instance NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withInstance(f, args[0], func(_ *instance.Env, i *instance.Instance) error {
				return instance.Logs(cmd.Context(), i, f.IO.Out, lines, follow)
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what is appended")
	cmd.Flags().IntVarP(&lines, "lines", "n", 0, "print only the last N lines (default: all)")
	return cmd
}

// envOutput is 'instance env -o json' (schema pgherd.instance-env/v1).
type envOutput struct {
	Instance  string            `json:"instance"`
	Variables map[string]string `json:"variables"`
}

func newCmdInstanceEnv(f *Factory) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "env NAME",
		Short: "Print the libpq environment (and PGDATA) that reaches the instance as its superuser",
		Args:  exactArgs(1, "one instance NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			return withInstance(f, args[0], func(env *instance.Env, i *instance.Instance) error {
				vars := instance.LibpqEnv(env, i)
				if format != "" {
					out := envOutput{Instance: i.ID(), Variables: map[string]string{}}
					for _, kv := range vars {
						k, v, _ := strings.Cut(kv, "=")
						out.Variables[k] = v
					}
					return writeData(f.IO.Out, format, out)
				}
				sort.Strings(vars)
				fmt.Fprintln(f.IO.Out, strings.Join(vars, "\n"))
				return nil
			})
		},
	}
	outputFlag(cmd, &format)
	return cmd
}

func newCmdInstanceExec(f *Factory) *cobra.Command {
	const usage = "NAME -- COMMAND [ARG...]"
	cmd := &cobra.Command{
		Use:   "exec " + usage,
		Short: "Run a command with the instance's libpq environment and PGDATA (e.g. psql, pg_controldata)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) >= 2 && cmd.ArgsLenAtDash() == -1 {
				return usageError{fmt.Errorf("put '--' before the command: %s %s -- %s", cmd.CommandPath(), args[0], strings.Join(args[1:], " "))}
			}
			if len(args) < 2 || cmd.ArgsLenAtDash() != 1 {
				return usageError{fmt.Errorf("usage: %s %s", cmd.CommandPath(), usage)}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return withInstance(f, args[0], func(env *instance.Env, i *instance.Instance) error {
				c := exec.CommandContext(cmd.Context(), args[1], args[2:]...)
				c.Env = instance.ExecEnv(env, i, os.Environ())
				if p, err := lookPath(args[1], c.Env); err == nil {
					c.Path, c.Err = p, nil
				}
				c.Stdin, c.Stdout, c.Stderr = f.IO.In, f.IO.Out, f.IO.ErrOut
				err := c.Run()
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return &ExitCodeError{Code: ee.ExitCode()}
				}
				return err
			})
		},
	}
	// A flag of the command given without '--' reaches our flag parser.
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w: put '--' before the command: %s %s", err, cmd.CommandPath(), usage)}
	})
	return cmd
}

// lookPath finds a program in the PATH of env (the instance's bindir first).
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, kv := range env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			for _, dir := range strings.Split(p, ":") {
				c := dir + "/" + name
				if st, err := os.Stat(c); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
					return c, nil
				}
			}
		}
	}
	return exec.LookPath(name)
}
