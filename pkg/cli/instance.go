package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/pgherd/pgherd/pkg/instance"
	"github.com/pgherd/pgherd/pkg/patroni"
	"github.com/pgherd/pgherd/pkg/service"
	"github.com/spf13/cobra"
)

func newCmdInstance(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "instance",
		Short: "Create, inspect and run PostgreSQL instances (VERSION/NAME, or NAME when unique)",
	}
	cmd.AddCommand(
		newCmdInstanceCreate(f), newCmdInstanceDrop(f),
		newCmdInstanceGet(f), newCmdInstanceList(f),
		newCmdInstanceAction(f, "start", "Start an instance and wait until it accepts connections", instance.Start),
		newCmdInstanceAction(f, "stop", "Stop an instance (fast shutdown)", instance.Stop),
		newCmdInstanceAction(f, "restart", "Stop then start an instance", instance.Restart),
		newCmdInstanceAction(f, "reload", "Make an instance re-read its configuration files", instance.Reload),
		newCmdInstanceAction(f, "promote", "Promote a standby of a plain instance to primary and wait until it accepts writes", instance.Promote),
		newCmdInstanceStatus(f), newCmdInstanceLogs(f),
		newCmdInstanceExec(f), newCmdInstanceEnv(f), newCmdInstanceURI(f),
	)
	cmd.AddCommand(newCmdsInstanceBackup(f)...)
	return cmd
}

type createOptions struct {
	req          instance.CreateRequest
	patroni      patroniCreateFlags
	passwordFile string
	checksums    bool
	state        string
	format       string
}

func newCmdInstanceCreate(f *Factory) *cobra.Command {
	opts := &createOptions{}
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an instance: initdb, configuration, service, start",
		Args:  exactArgs(1, "one instance NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(opts.format); err != nil {
				return err
			}
			opts.req.Name = args[0]
			if cmd.Flags().Changed("data-checksums") {
				opts.req.DataChecksums = &opts.checksums
			}
			opts.req.State = instance.State(opts.state)
			pr, err := opts.patroni.request(cmd.Flags())
			if err != nil {
				return err
			}
			opts.req.Patroni = pr
			if opts.passwordFile != "" {
				pw, err := readSecretFile(opts.passwordFile)
				if err != nil {
					return err
				}
				opts.req.SuperuserPassword = pw
			}
			return runInstanceCreate(cmd.Context(), f, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.req.Version, "version", "", "PostgreSQL major version (default: site default_version, else the newest installed)")
	fl.IntVar(&opts.req.Port, "port", 0, "TCP port (default: site postgresql.port, or the next free one)")
	fl.StringVar(&opts.req.Locale, "locale", "", "locale for initdb (default: site postgresql.initdb.locale)")
	fl.StringVar(&opts.req.Encoding, "encoding", "", "encoding for initdb (default: site postgresql.initdb.encoding)")
	fl.BoolVar(&opts.checksums, "data-checksums", false, "enable data checksums (default: site postgresql.initdb.data_checksums)")
	fl.StringVar(&opts.req.AuthLocal, "auth-local", "", "pg_hba method for local connections (default: site postgresql.auth.local)")
	fl.StringVar(&opts.req.AuthHost, "auth-host", "", "pg_hba method for TCP connections (default: site postgresql.auth.host)")
	fl.StringVar(&opts.passwordFile, "surole-password-file", "", "file holding the superuser's password (first line)")
	fl.StringVar(&opts.state, "state", "started", "state after creation: started or stopped")
	fl.StringVar(&opts.req.StandbyFor, "standby-for", "", "make a physical standby of this primary (libpq URI or connection string; pg_basebackup)")
	fl.StringVar(&opts.req.Slot, "slot", "", "with --standby-for: create this replication slot on the primary and stream through it")
	addPatroniCreateFlags(fl, &opts.patroni)
	outputFlag(cmd, &opts.format)
	return cmd
}

// createdOutput is 'instance create -o json' (schema pgherd.instance-created/v1).
type createdOutput struct {
	Instance      string             `json:"instance"`
	Name          string             `json:"name"`
	Version       string             `json:"version"`
	Port          int                `json:"port"`
	DataDirectory string             `json:"data_directory"`
	State         instance.State     `json:"state"`
	Patroni       *createdPatroniOut `json:"patroni"`
}

type createdPatroniOut struct {
	Cluster string `json:"cluster"`
	Node    string `json:"node"`
	RestAPI string `json:"restapi"`
}

func runInstanceCreate(ctx context.Context, f *Factory, opts *createOptions) error {
	env, err := f.InstanceEnv()
	if err != nil {
		return err
	}
	i, err := instance.Create(ctx, env, opts.req)
	if err != nil {
		return err
	}
	out := createdOutput{Instance: i.ID(), Name: i.Name, Version: i.Version, Port: i.Port, DataDirectory: i.DataDir, State: i.State()}
	if cfg, _, err := i.PatroniClient(); err == nil {
		out.Patroni = &createdPatroniOut{Cluster: cfg.Scope, Node: cfg.Name, RestAPI: cfg.RestAPI.ConnectAddress}
	}
	if opts.format != "" {
		return writeData(f.IO.Out, opts.format, out)
	}
	fmt.Fprintf(f.IO.Out, "instance %s created (port %d, %s)\n", out.Instance, out.Port, out.State)
	if p := out.Patroni; p != nil {
		fmt.Fprintf(f.IO.Out, "Patroni member %s of cluster %s, REST API %s\n", p.Node, p.Cluster, p.RestAPI)
	}
	return nil
}

// readSecretFile returns the first line of a password file.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading the password file: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	if pw = strings.TrimRight(pw, "\r"); pw == "" {
		return "", fmt.Errorf("password file %s is empty: put the password on its first line", path)
	}
	return pw, nil
}

func newCmdInstanceDrop(f *Factory) *cobra.Command {
	var yes, purge bool
	cmd := &cobra.Command{
		Use:   "drop NAME",
		Short: "Stop an instance and delete its data, WAL, logs and service",
		Args:  exactArgs(1, "one instance NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := f.InstanceEnv()
			if err != nil {
				return err
			}
			i, err := instance.Find(env, args[0])
			if err != nil {
				return err
			}
			question := fmt.Sprintf("Drop instance %s and delete %s?", i.ID(), i.DataDir)
			var cluster *patroni.Config
			if purge {
				if cluster, err = purgeTarget(i); err != nil {
					return err
				}
				question = fmt.Sprintf("Drop instance %s, delete %s and remove Patroni cluster %s from the DCS?", i.ID(), i.DataDir, cluster.Scope)
			}
			if !yes {
				if !f.IO.CanPrompt() {
					return fmt.Errorf("refusing to drop %s without confirmation: add --yes", i.ID())
				}
				if !confirm(f.IO, question) {
					return fmt.Errorf("not dropped: %s is unchanged", i.ID())
				}
			}
			res, err := instance.Drop(cmd.Context(), env, i, instance.DropRequest{PurgeCluster: purge})
			if err != nil {
				return err
			}
			fmt.Fprintf(f.IO.Out, "instance %s dropped\n", i.ID())
			if cluster != nil {
				fmt.Fprintf(f.IO.Out, "Patroni cluster %s removed from the DCS (%d keys)\n", cluster.Scope, res.PurgedKeys)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&purge, "purge-cluster", false, "Patroni member: also remove its cluster from the DCS (the last member only)")
	return cmd
}

// withInstance resolves the instance argument and runs fn on it.
func withInstance(f *Factory, ref string, fn func(*instance.Env, *instance.Instance) error) error {
	env, err := f.InstanceEnv()
	if err != nil {
		return err
	}
	i, err := instance.Find(env, ref)
	if err != nil {
		return err
	}
	return fn(env, i)
}

func newCmdInstanceAction(f *Factory, verb, short string, action func(context.Context, *instance.Env, *instance.Instance) error) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  exactArgs(1, "one instance NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withInstance(f, args[0], func(env *instance.Env, i *instance.Instance) error {
				return action(cmd.Context(), env, i)
			})
		},
	}
}

// statusOutput is 'instance status -o json' (schema pgherd.instance-status/v1).
type statusOutput struct {
	Instance string         `json:"instance"`
	State    instance.State `json:"state"`
	Service  *serviceOutput `json:"service"`
}

// serviceOutput is what the service manager says of the daemon pgherd runs
// for an instance: its Patroni, or its postmaster.
type serviceOutput struct {
	Name        string  `json:"name"`
	Running     bool    `json:"running"`
	Supervision string  `json:"supervision"`
	Restarting  bool    `json:"restarting"`
	GaveUp      bool    `json:"gave_up"`
	Restarts    int     `json:"restarts"`
	LastExit    *string `json:"last_exit"`
}

func newServiceOutput(name string, st service.State) *serviceOutput {
	o := &serviceOutput{Name: strings.TrimSuffix(name, " service"), Running: st.Running, Supervision: st.Supervision,
		Restarting: st.Restarting, GaveUp: st.GaveUp, Restarts: st.Restarts}
	if st.LastExit != "" {
		o.LastExit = &st.LastExit
	}
	return o
}

func newCmdInstanceStatus(f *Factory) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Say whether an instance runs (exit code 0) or not (exit code 3)",
		Args:  exactArgs(1, "one instance NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			return withInstance(f, args[0], func(env *instance.Env, i *instance.Instance) error {
				st := i.State()
				name, sst, serr := instance.ServiceState(cmd.Context(), env, i)
				if format != "" {
					out := statusOutput{Instance: i.ID(), State: st}
					if serr == nil {
						out.Service = newServiceOutput(name, sst)
					}
					if err := writeData(f.IO.Out, format, out); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(f.IO.Out, "PostgreSQL %s: %s\n", i.ID(), map[instance.State]string{instance.Started: "running", instance.Stopped: "not running"}[st])
					if serr == nil {
						fmt.Fprintf(f.IO.Out, "%s: %s\n", name, sst.Words())
					}
				}
				if st != instance.Started {
					return &ExitCodeError{Code: ExitStopped}
				}
				return nil
			})
		},
	}
	outputFlag(cmd, &format)
	return cmd
}
