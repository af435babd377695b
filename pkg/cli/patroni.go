package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/instance"
	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/patroni"
	"github.com/pgherd/pgherd/pkg/pgconf"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// patroniCreateFlags are instance create's --patroni-* options.
type patroniCreateFlags struct {
	req      instance.PatroniRequest
	dcsHosts []string
}

func addPatroniCreateFlags(fl *pflag.FlagSet, o *patroniCreateFlags) {
	fl.StringVar(&o.req.Cluster, "patroni-cluster", "", "make the instance a member of this Patroni cluster (the first member bootstraps it)")
	fl.StringVar(&o.req.Node, "patroni-node", "", "member name in the cluster (default: the instance name)")
	fl.StringVar(&o.req.RestAPIConnect, "patroni-restapi-connect-address", "", "HOST:PORT of this member's REST API (default: the connect host and a free port from patroni.restapi_port)")
	fl.StringVar(&o.req.RestAPIListen, "patroni-restapi-listen", "", "HOST:PORT the REST API listens on (default: its connect address)")
	fl.StringVar(&o.req.PGConnectHost, "patroni-postgresql-connect-host", "", "address other members reach this PostgreSQL on (e.g. 127.0.1.1 on one machine)")
	fl.StringVar(&o.req.ReplicationSSLCert, "patroni-postgresql-replication-ssl-cert", "", "client certificate for replication connections")
	fl.StringVar(&o.req.ReplicationSSLKey, "patroni-postgresql-replication-ssl-key", "", "its private key")
	fl.StringSliceVar(&o.dcsHosts, "patroni-dcs-hosts", nil, "DCS endpoints HOST:PORT,... (default: site patroni.dcs.hosts)")
	fl.StringVar(&o.req.DCS.ListenPeer, "dcs-listen-peer", "", "embedded DCS: HOST:PORT of this member's Raft port (default: the connect host and patroni.dcs.embedded.peer_port)")
	fl.StringVar(&o.req.DCS.ListenClient, "dcs-listen-client", "", "embedded DCS: HOST:PORT of its etcd API (default: the connect host and patroni.dcs.embedded.client_port)")
	fl.StringVar(&o.req.DCS.Peer, "dcs-peer", "", "embedded DCS: HOST:PORT of a member to join (default: a member on this host, else a new DCS)")
	fl.StringVar(&o.req.DCS.Zone, "dcs-zone", "", "embedded DCS: this host's failure domain (default: patroni.dcs.embedded.zone)")
	fl.StringVar(&o.req.DCS.Token, "dcs-token", "", "embedded DCS: a data join token from `pgherd dcs token create --role data`, for a host without the cluster's files (default $PGHERD_DCS_TOKEN)")
}

// request returns the Patroni request, nil without --patroni-cluster, or a
// usage error when other --patroni-* flags come without it.
func (o *patroniCreateFlags) request(fl *pflag.FlagSet) (*instance.PatroniRequest, error) {
	if o.req.Cluster == "" {
		var stray string
		fl.Visit(func(f *pflag.Flag) {
			if (strings.HasPrefix(f.Name, "patroni-") || strings.HasPrefix(f.Name, "dcs-")) && f.Name != "patroni-cluster" {
				stray = f.Name
			}
		})
		if stray != "" {
			return nil, usageError{fmt.Errorf("--%s needs --patroni-cluster", stray)}
		}
		return nil, nil
	}
	r := o.req
	r.DCSHosts = o.dcsHosts
	if r.DCS.Token == "" {
		r.DCS.Token = os.Getenv("PGHERD_DCS_TOKEN")
	}
	if r.DCS.Token != "" {
		if _, err := dcs.ParseToken(r.DCS.Token); err != nil {
			return nil, usageError{fmt.Errorf("--dcs-token: %w", err)}
		}
		if r.DCS.Peer == "" {
			return nil, usageError{fmt.Errorf("--dcs-token needs --dcs-peer: the peer address of the member whose host printed it")}
		}
	}
	return &r, nil
}

func newCmdPatroni(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "patroni",
		Short: "Operate Patroni clusters of local instances: list, switchover, failover, pause, resume, reinit, logs, show-config, edit-config",
	}
	cmd.AddCommand(newCmdPatroniList(f), newCmdPatroniSwitchover(f), newCmdPatroniFailover(f),
		newCmdPatroniPause(f, true), newCmdPatroniPause(f, false), newCmdPatroniReinit(f), newCmdPatroniLogs(f),
		newCmdPatroniShowConfig(f), newCmdPatroniEditConfig(f), newCmdPatroniURI(f, false), newCmdPatroniURI(f, true))
	return cmd
}

// withPatroni resolves a Patroni member instance and its REST client.
func withPatroni(f *Factory, ref string, fn func(*instance.Instance, *patroni.Config, *patroni.Client) error) error {
	return withInstance(f, ref, func(_ *instance.Env, i *instance.Instance) error {
		if !i.PatroniManaged() {
			return fmt.Errorf("instance %s is not managed by Patroni (no %s)", i.ID(), i.PatroniConfig)
		}
		cfg, c, err := i.PatroniClient()
		if err != nil {
			return err
		}
		return fn(i, cfg, c)
	})
}

// patroniListOutput is 'patroni list -o json' (schema pgherd.patroni-members/v1).
type patroniListOutput struct {
	Cluster string             `json:"cluster"`
	Paused  bool               `json:"paused"`
	Timing  patroni.TimingInfo `json:"timing"`
	// FastFailover is host-aware revocation for the member the command
	// asked through (its DCS member's declaration is on its host).
	FastFailover patroni.FastFailoverInfo `json:"fast_failover"`
	Members      []patroni.ListEntry      `json:"members"`
}

func newCmdPatroniList(f *Factory) *cobra.Command {
	var format, cluster string
	cmd := &cobra.Command{
		Use:   "list [NAME | --cluster CLUSTER]",
		Short: "List the members of the Patroni cluster of instance NAME, or of CLUSTER (as patronictl list)",
		Args: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (cluster != "") || len(args) > 1 {
				return usageError{fmt.Errorf("%s expects one instance NAME or --cluster CLUSTER; see %s --help", cmd.CommandPath(), cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			if cluster != "" {
				ref, err := clusterMember(f, cluster)
				if err != nil {
					return err
				}
				args = []string{ref}
			}
			return withPatroni(f, args[0], func(i *instance.Instance, cfg *patroni.Config, c *patroni.Client) error {
				cl, err := c.Cluster(cmd.Context())
				if err != nil {
					return err
				}
				timing, err := patroni.ClusterTiming(cmd.Context(), cfg, c)
				if err != nil {
					return err
				}
				env, err := f.InstanceEnv()
				if err != nil {
					return err
				}
				ff := instance.FastFailover(cmd.Context(), env, i, cfg, c)
				rows := cl.List()
				if format != "" {
					return writeData(f.IO.Out, format, patroniListOutput{Cluster: cfg.Scope, Paused: cl.Pause, Timing: timing, FastFailover: ff, Members: rows})
				}
				table := make([][]string, 0, len(rows))
				for _, r := range rows {
					lag := ""
					if r.LagBytes != nil {
						lag = strconv.FormatInt(patroni.MiB(*r.LagBytes), 10)
					} else if r.Role != "leader" && r.Role != "standby_leader" {
						lag = "unknown"
					}
					tl := ""
					if r.Timeline > 0 {
						tl = strconv.Itoa(r.Timeline)
					}
					table = append(table, []string{r.Name, r.Host + ":" + strconv.Itoa(r.Port), r.Role, r.State, tl, lag})
				}
				if cl.Pause {
					fmt.Fprintf(f.IO.ErrOut, "cluster %s: maintenance mode (paused)\n", cfg.Scope)
				}
				fmt.Fprintf(f.IO.Out, "Cluster %s, timing %s, host-aware revocation for %s %s\n", cfg.Scope, timing, cfg.Name, ff)
				return writeTable(f.IO, []string{"Member", "Host", "Role", "State", "TL", "Lag in MB"}, table)
			})
		},
	}
	outputFlag(cmd, &format)
	cmd.Flags().StringVar(&cluster, "cluster", "", "Patroni cluster (scope) one of this host's instances belongs to")
	return cmd
}

// purgeTarget returns the Patroni cluster drop --purge-cluster would remove.
func purgeTarget(i *instance.Instance) (*patroni.Config, error) {
	if !i.PatroniManaged() {
		return nil, usageError{fmt.Errorf("--purge-cluster: instance %s is not managed by Patroni", i.ID())}
	}
	cfg, _, err := i.PatroniClient()
	return cfg, err
}

// confirmOrYes asks whether to do action (a phrase such as "switch over
// cluster main from pg1 to pg2") on a terminal, unless yes; without a
// terminal it fails and says to add --yes.
func confirmOrYes(f *Factory, yes bool, action string) error {
	if yes {
		return nil
	}
	if !f.IO.CanPrompt() {
		return fmt.Errorf("refusing to %s without confirmation: add --yes", action)
	}
	if !confirm(f.IO, strings.ToUpper(action[:1])+action[1:]+"?") {
		return errors.New("cancelled: nothing changed")
	}
	return nil
}

// patroniActionOutput is 'patroni switchover|failover|reinit -o json'
// (schema pgherd.patroni-action/v1): printed once the cluster is healthy.
type patroniActionOutput struct {
	Cluster   string              `json:"cluster"`
	Action    string              `json:"action"`
	Member    *string             `json:"member"`    // reinit: the rebuilt member
	Candidate *string             `json:"candidate"` // the member asked to lead; null: Patroni's choice
	Message   string              `json:"message"`   // Patroni's answer
	Leader    string              `json:"leader"`    // the leader once the cluster is healthy again
	Members   []patroni.ListEntry `json:"members"`
}

// patroniActionOptions are the flags switchover, failover and reinit share.
type patroniActionOptions struct {
	candidate, leader, format string
	yes                       bool
}

func (o *patroniActionOptions) add(cmd *cobra.Command) {
	cmd.Flags().BoolVarP(&o.yes, "yes", "y", false, "do not ask for confirmation")
	outputFlag(cmd, &o.format)
}

// finishAction waits until the cluster is healthy again and reports it.
func finishAction(ctx context.Context, f *Factory, o *patroniActionOptions, cfg *patroni.Config, c *patroni.Client, out patroniActionOutput) error {
	if o.format == "" {
		fmt.Fprintln(f.IO.Out, out.Message)
	}
	cl, err := waitHealthy(ctx, cfg, c)
	if err != nil {
		return err
	}
	l, _ := cl.Leader()
	if o.format == "" {
		fmt.Fprintf(f.IO.Out, "cluster %s: %s leads, %d members running\n", cfg.Scope, l.Name, len(cl.Members))
		return nil
	}
	out.Leader, out.Members = l.Name, cl.List()
	return writeData(f.IO.Out, o.format, out)
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func newCmdPatroniSwitchover(f *Factory) *cobra.Command {
	o := &patroniActionOptions{}
	cmd := &cobra.Command{
		Use:   "switchover NAME",
		Short: "Move the leader role of instance NAME's cluster to another healthy member",
		Args:  exactArgs(1, "one instance NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.format); err != nil {
				return err
			}
			return withPatroni(f, args[0], func(_ *instance.Instance, cfg *patroni.Config, c *patroni.Client) error {
				ctx := cmd.Context()
				cl, err := c.Cluster(ctx)
				if err != nil {
					return err
				}
				if err := cl.CheckSwitchover(cfg.Scope, o.leader, o.candidate); err != nil {
					return err
				}
				leader, _ := cl.Leader()
				to := o.candidate
				if to == "" {
					to = "any healthy replica"
				}
				if err := confirmOrYes(f, o.yes, fmt.Sprintf("switch over cluster %s from %s to %s", cfg.Scope, leader.Name, to)); err != nil {
					return err
				}
				msg, err := c.Switchover(ctx, leader.Name, o.candidate)
				if err != nil {
					return patroni.ExplainRefusal(err, "switchover", cfg.Scope, o.candidate, args[0])
				}
				return finishAction(ctx, f, o, cfg, c, patroniActionOutput{Cluster: cfg.Scope, Action: "switchover", Candidate: optional(o.candidate), Message: msg})
			})
		},
	}
	cmd.Flags().StringVar(&o.candidate, "candidate", "", "member to promote (default: Patroni picks a healthy replica)")
	cmd.Flags().StringVar(&o.leader, "leader", "", "refuse unless this member is the current leader (as patronictl --leader)")
	o.add(cmd)
	return cmd
}

// waitHealthy waits, for up to twice the cluster's ttl plus 30 s, until the
// cluster has a leader and every member runs again.
func waitHealthy(ctx context.Context, cfg *patroni.Config, c *patroni.Client) (*patroni.Cluster, error) {
	wait := time.Duration(2*cfg.Bootstrap.DCS.TTL+30) * time.Second
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	cl, err := c.WaitHealthy(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster %s is not healthy after %s: %w; see 'pgherd patroni list'", cfg.Scope, wait, err)
	}
	return cl, nil
}

func newCmdPatroniFailover(f *Factory) *cobra.Command {
	o := &patroniActionOptions{}
	cmd := &cobra.Command{
		Use:   "failover NAME --candidate NODE",
		Short: "Promote NODE in instance NAME's cluster, even without a healthy leader",
		Args:  exactArgs(1, "one instance NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.candidate == "" {
				return usageError{errors.New("--candidate NODE is required: Patroni fails over to a named member only")}
			}
			if err := checkOutput(o.format); err != nil {
				return err
			}
			return withPatroni(f, args[0], func(_ *instance.Instance, cfg *patroni.Config, c *patroni.Client) error {
				ctx := cmd.Context()
				cl, err := c.Cluster(ctx)
				if err != nil {
					return err
				}
				if err := cl.CheckFailover(cfg.Scope, o.candidate); err != nil {
					return err
				}
				if err := confirmOrYes(f, o.yes, fmt.Sprintf("fail over cluster %s to %s", cfg.Scope, o.candidate)); err != nil {
					return err
				}
				msg, err := c.Failover(ctx, o.candidate)
				if err != nil {
					return patroni.ExplainRefusal(err, "failover", cfg.Scope, o.candidate, args[0])
				}
				return finishAction(ctx, f, o, cfg, c, patroniActionOutput{Cluster: cfg.Scope, Action: "failover", Candidate: optional(o.candidate), Message: msg})
			})
		},
	}
	cmd.Flags().StringVar(&o.candidate, "candidate", "", "member to promote")
	o.add(cmd)
	return cmd
}

func newCmdPatroniPause(f *Factory, pause bool) *cobra.Command {
	verb, short := "resume", "End maintenance mode: Patroni fails over automatically again"
	if pause {
		verb, short = "pause", "Maintenance mode for instance NAME's cluster: no automatic failover"
	}
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  exactArgs(1, "one instance NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withPatroni(f, args[0], func(_ *instance.Instance, cfg *patroni.Config, c *patroni.Client) error {
				act, done := c.Resume, "resumed"
				if pause {
					act, done = c.Pause, "paused"
				}
				if err := act(cmd.Context()); err != nil {
					return err
				}
				// Every member applies it on its next loop: wait for them all.
				wait := time.Duration(2*cfg.Bootstrap.DCS.LoopWait+10) * time.Second
				ctx, cancel := context.WithTimeout(cmd.Context(), wait)
				defer cancel()
				if err := c.WaitPaused(ctx, pause); err != nil {
					return fmt.Errorf("cluster %s %s, but not every member says so yet: %w", cfg.Scope, done, err)
				}
				fmt.Fprintf(f.IO.Out, "cluster %s %s\n", cfg.Scope, done)
				return nil
			})
		},
	}
}

func newCmdPatroniReinit(f *Factory) *cobra.Command {
	o := &patroniActionOptions{}
	cmd := &cobra.Command{
		Use:   "reinit NAME",
		Short: "Rebuild replica instance NAME from its cluster's leader (its data is replaced)",
		Args:  exactArgs(1, "one instance NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.format); err != nil {
				return err
			}
			return withPatroni(f, args[0], func(i *instance.Instance, cfg *patroni.Config, c *patroni.Client) error {
				cl, err := c.Cluster(cmd.Context())
				if err != nil {
					return err
				}
				if err := cl.CheckReinit(cfg.Scope, cfg.Name); err != nil {
					return err
				}
				if err := confirmOrYes(f, o.yes, fmt.Sprintf("replace the data of %s (member %s) with a copy of the leader's", i.ID(), cfg.Name)); err != nil {
					return err
				}
				before, err := c.Patroni(cmd.Context())
				if err != nil {
					return err
				}
				msg, err := c.Reinitialize(cmd.Context(), false)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), patroni.LongTimeout)
				defer cancel()
				if err := c.WaitRestarted(ctx, before.PostmasterStarted); err != nil {
					return fmt.Errorf("member %s is not running again: %w; see 'pgherd patroni logs %s'", cfg.Name, err, args[0])
				}
				return finishAction(cmd.Context(), f, o, cfg, c, patroniActionOutput{Cluster: cfg.Scope, Action: "reinit", Member: optional(cfg.Name), Message: msg})
			})
		},
	}
	o.add(cmd)
	return cmd
}

func newCmdPatroniLogs(f *Factory) *cobra.Command {
	var follow, all bool
	var lines int
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print Patroni's log of instance NAME (--all interleaves PostgreSQL's)",
		Args:  exactArgs(1, "one instance NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withInstance(f, args[0], func(_ *instance.Env, i *instance.Instance) error {
				files, err := instance.PatroniLogFiles(i, all)
				if err != nil {
					return err
				}
				out, err := patroni.Tail(files, lines)
				if err != nil {
					return err
				}
				for _, l := range out {
					fmt.Fprintln(f.IO.Out, l)
				}
				if !follow {
					return nil
				}
				ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
				defer stop()
				return patroni.NewFollower(files, false).Run(ctx, 250*time.Millisecond, func(l string) { fmt.Fprintln(f.IO.Out, l) })
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what is appended")
	cmd.Flags().BoolVar(&all, "all", false, "interleave PostgreSQL's log by time")
	cmd.Flags().IntVarP(&lines, "lines", "n", 0, "print only the last N lines (default: all)")
	return cmd
}

// patroniPgconf applies pgconf set/remove to a Patroni member through
// Patroni.
func patroniPgconf(ctx context.Context, f *Factory, opts *pgconfOptions, env *instance.Env, i *instance.Instance, changes []pgconf.Change) error {
	res, err := instance.PatroniSetParameters(ctx, env, i, changes, opts.dryRun)
	if err != nil {
		return err
	}
	if opts.format != "" {
		if err := writeData(f.IO.Out, opts.format, res); err != nil {
			return err
		}
	} else {
		show := func(v *string) string {
			if v == nil {
				return "(not set)"
			}
			return *v
		}
		where := map[string]string{instance.PathCluster: "cluster-wide, every member (PATCH /config)", instance.PathLocal: "this member (Patroni YAML, reload)"}
		for _, c := range res.Changes {
			fmt.Fprintf(f.IO.Out, "%s: %s -> %s [%s]\n", c.Name, show(c.Old), show(c.New), where[c.Path])
		}
		if res.DryRun {
			fmt.Fprintln(f.IO.Out, "dry run: nothing was changed")
		}
	}
	if opts.dryRun || len(res.Restart) == 0 {
		return nil
	}
	log := logging.From(ctx)
	log.Info(fmt.Sprintf("a restart is pending for: %s", strings.Join(res.Restart, ", ")))
	restart := opts.yes
	if !opts.yes && !opts.no && !opts.nonInter && f.IO.CanPrompt() {
		restart = confirm(f.IO, "PostgreSQL needs to be restarted; restart the members that need it now, through Patroni?")
	}
	if !restart {
		log.Info(fmt.Sprintf("the members keep running with the old values; restart them with 'pgherd pgconf set -i %s ... --yes' or 'pgherd instance restart NAME'", i.ID()))
		return nil
	}
	return instance.PatroniRestartPending(ctx, env, i, res)
}
