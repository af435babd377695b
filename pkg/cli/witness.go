package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/site"
	"github.com/pgherd/pgherd/pkg/witness"
	"github.com/spf13/cobra"
)

// WitnessEnv builds what witness operations need: this host's DCS
// members, as `pgherd dcs` sees them.
func (f *Factory) WitnessEnv() (*witness.Env, error) {
	s, err := f.Settings()
	if err != nil {
		return nil, err
	}
	if s.Patroni.DCS.Kind == site.DCSEtcd {
		return nil, errors.New("this site's Patroni uses an external etcd (patroni.dcs.kind: etcd), and a pgherd witness joins only pgherd's embedded DCS: " +
			"give etcd its third vote with a third etcd member on another host (etcdctl member add), or move to patroni.dcs.kind: embedded")
	}
	l, err := f.dcsLocal()
	if err != nil {
		return nil, err
	}
	return &witness.Env{Local: l}, nil
}

// selfExe is the pgherd binary as it was invoked (a symlink stays a
// symlink, so an upgrade in place is picked up), made absolute for the
// service manager.
func selfExe() (string, error) {
	name := os.Args[0]
	if !strings.Contains(name, "/") {
		p, err := exec.LookPath(name)
		if err != nil {
			return os.Executable()
		}
		name = p
	}
	return filepath.Abs(name)
}

func newCmdWitness(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "witness",
		Short: "Add, inspect and remove witnesses: DCS members that vote but hold no PostgreSQL",
	}
	cmd.AddCommand(newCmdWitnessAdd(f), newCmdWitnessList(f), newCmdWitnessStatus(f), newCmdWitnessRemove(f), newCmdWitnessCheck(f),
		newCmdMemberLifecycle(f, "start", dcs.RoleWitness, "Start a witness set up here and wait until it follows a leader (nothing to do when it runs)"),
		newCmdMemberLifecycle(f, "stop", dcs.RoleWitness, "Stop a witness set up here, its supervision first (nothing to do when it is stopped)"))
	return cmd
}

type witnessAddOptions struct {
	req    witness.AddRequest
	output string
}

func newCmdWitnessAdd(f *Factory) *cobra.Command {
	opts := &witnessAddOptions{}
	cmd := &cobra.Command{
		Use:   "add NAME --peer HOST:PORT",
		Short: "Set up a witness on this host, join it through any member and show who votes",
		Args:  exactArgs(1, "one witness NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.req.Name = args[0]
			if opts.req.Peer == "" {
				return usageError{errors.New("--peer HOST:PORT is required: the peer port of any member of the cluster to join")}
			}
			switch opts.req.Profile {
			case "production", "testing":
			default:
				return usageError{fmt.Errorf("--profile %q: use production or testing", opts.req.Profile)}
			}
			if err := checkOutput(opts.output); err != nil {
				return err
			}
			if opts.req.Token == "" {
				opts.req.Token = os.Getenv("PGHERD_DCS_TOKEN")
			}
			if _, err := dcs.ParseToken(opts.req.Token); opts.req.Token != "" && err != nil {
				return usageError{fmt.Errorf("--token: %w", err)}
			}
			return runWitnessAdd(cmd.Context(), f, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.req.Peer, "peer", "", "HOST:PORT of any member's peer port")
	fl.StringVar(&opts.req.ListenPeer, "listen-peer", "", "HOST:PORT for Raft and cluster RPCs (default: this host's address toward --peer, port 2380)")
	fl.StringVar(&opts.req.ListenClient, "listen-client", "", "HOST:PORT for the etcd v3 API (default: the same host, port 2379)")
	fl.StringVar(&opts.req.DataDir, "data-dir", "", "data directory (default: PREFIX/srv/dcs/NAME)")
	fl.StringVar(&opts.req.Zone, "zone", "", "failure domain of this host (an availability zone, a rack, a room)")
	fl.StringVar(&opts.req.Profile, "profile", "production", "production refuses a witness in a data member's zone; testing only warns")
	fl.StringVar(&opts.req.Token, "token", "", "join token from `pgherd dcs token create` on a data member's host (default $PGHERD_DCS_TOKEN; not needed there)")
	outputFlag(cmd, &opts.output)
	return cmd
}

func runWitnessAdd(ctx context.Context, f *Factory, opts *witnessAddOptions) error {
	env, err := f.WitnessEnv()
	if err != nil {
		return err
	}
	res, err := witness.Add(ctx, env, opts.req)
	if err != nil {
		return err
	}
	if opts.output != "" {
		return writeData(f.IO.Out, opts.output, res)
	}
	return writeMembers(f, "", res.Members)
}

type membersOptions struct {
	peer, output string
}

// writeMembers prints members as `pgherd dcs members` does.
func writeMembers(f *Factory, format string, ms []dcs.MemberStatus) error {
	if format != "" {
		return writeData(f.IO.Out, format, ms)
	}
	rows := make([][]string, 0, len(ms))
	for _, m := range ms {
		rows = append(rows, []string{m.Name, m.Role, m.Suffrage, m.RaftState, m.PeerURL, m.ClientURL, m.Zone,
			strconv.FormatUint(m.AppliedIndex, 10), secondsText(m.LastContactS), strconv.FormatBool(m.Healthy), orDash(m.Service)})
	}
	return writeTable(f.IO, []string{"Name", "Role", "Suffrage", "State", "Peer URL", "Client URL", "Zone", "Applied", "Last contact", "Healthy", "Service here"}, rows)
}

func newCmdWitnessList(f *Factory) *cobra.Command {
	opts := &membersOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the cluster's witnesses (the fields of `pgherd dcs members`)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(opts.output); err != nil {
				return err
			}
			env, err := f.WitnessEnv()
			if err != nil {
				return err
			}
			ms, err := witness.List(cmd.Context(), env, opts.peer)
			if err != nil {
				return err
			}
			return writeMembers(f, opts.output, ms)
		},
	}
	cmd.Flags().StringVar(&opts.peer, "peer", "", "HOST:PORT of any member's peer port (default: the members configured on this host)")
	outputFlag(cmd, &opts.output)
	return cmd
}

func newCmdWitnessStatus(f *Factory) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a witness's Raft state, vote, leader, last contact and applied index lag",
		Args:  exactArgs(1, "one witness NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			env, err := f.WitnessEnv()
			if err != nil {
				return err
			}
			st, err := witness.GetStatus(cmd.Context(), env, args[0])
			if err != nil {
				return err
			}
			if output != "" {
				return writeData(f.IO.Out, output, st)
			}
			return writeTable(f.IO, []string{"FIELD", "VALUE"}, [][]string{
				{"name", st.Name}, {"raft state", st.RaftState}, {"suffrage", st.Suffrage}, {"leader", st.Leader},
				{"last contact", secondsText(st.LastContactS)}, {"applied index", strconv.FormatUint(st.AppliedIndex, 10)},
				{"applied index lag", strconv.FormatUint(st.Lag, 10)}, {"term", strconv.FormatUint(st.Term, 10)},
				{"zone", st.Zone}, {"healthy", strconv.FormatBool(st.Healthy)}, {"service", st.Service},
			})
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func newCmdWitnessRemove(f *Factory) *cobra.Command {
	var yes, force bool
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Take a witness out of the cluster (refused when it would cost the quorum), then delete its service and data",
		Args:  exactArgs(1, "one witness NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := f.WitnessEnv()
			if err != nil {
				return err
			}
			if _, err := env.LoadWitness(args[0]); err != nil {
				return err
			}
			if w := witness.RemovalWarning(cmd.Context(), env, args[0]); w != "" && !force {
				logging.From(cmd.Context()).Warn(w)
			}
			if !yes && !confirm(f.IO, fmt.Sprintf("Remove witness %s and delete its data?", args[0])) {
				return fmt.Errorf("refusing to remove witness %s without confirmation: add --yes", args[0])
			}
			if err := witness.Remove(cmd.Context(), env, args[0], force); err != nil {
				return err
			}
			fmt.Fprintf(f.IO.Out, "witness %s removed\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&force, "force", false, "delete the witness even when no member of its cluster answers (the cluster is gone)")
	return cmd
}

func newCmdWitnessCheck(f *Factory) *cobra.Command {
	var output, namespace string
	cmd := &cobra.Command{
		Use:   "check [NAME]",
		Short: "From the witness, reach every data member's Patroni REST API and PostgreSQL port",
		Long: "Reads the Patroni clusters from the DCS through the witness NAME (default: the only witness on this host),\n" +
			"reaches each member's REST API and PostgreSQL port from here, and reports the healthy count, the leader,\n" +
			"the timeline and each member's lag. Exits 1 when a member is not healthy.",
		Args: maxArgs(1, "at most one witness NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			env, err := f.WitnessEnv()
			if err != nil {
				return err
			}
			name, err := localWitness(env, args)
			if err != nil {
				return err
			}
			h, err := witness.Check(cmd.Context(), env, name, namespace)
			if err != nil {
				return err
			}
			if output != "" {
				err = writeData(f.IO.Out, output, h)
			} else {
				err = writeHealth(f, h)
			}
			if err != nil {
				return err
			}
			for _, c := range h.Clusters {
				if c.Healthy < c.Total || c.Leader == "" {
					return &ExitCodeError{Code: ExitError, Err: fmt.Errorf("cluster %s: %d of %d members healthy, leader %q", c.Scope, c.Healthy, c.Total, c.Leader)}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&namespace, "namespace", "", "Patroni's key prefix in the DCS (default /service)")
	outputFlag(cmd, &output)
	return cmd
}

// localWitness returns args[0], or the only witness configured here.
func localWitness(env *witness.Env, args []string) (string, error) {
	if len(args) == 1 {
		return args[0], nil
	}
	local, err := env.LocalMembers()
	if err != nil {
		return "", err
	}
	var names []string
	for _, c := range local {
		if c.Role == "witness" {
			names = append(names, c.Name)
		}
	}
	if len(names) != 1 {
		return "", usageError{fmt.Errorf("%d witnesses are configured on this host (%v): name one", len(names), names)}
	}
	return names[0], nil
}

func writeHealth(f *Factory, h *witness.Health) error {
	if len(h.Clusters) == 0 {
		fmt.Fprintln(f.IO.Out, "no Patroni cluster in the DCS")
		return nil
	}
	for _, c := range h.Clusters {
		fmt.Fprintf(f.IO.Out, "cluster %s: %d/%d healthy, leader %s, timeline %d\n", c.Scope, c.Healthy, c.Total, orDash(c.Leader), c.Timeline)
		rows := [][]string{}
		for _, m := range c.Members {
			lag := "-"
			if m.LagBytes != nil {
				lag = strconv.FormatInt(*m.LagBytes, 10)
			}
			rows = append(rows, []string{m.Name, m.Role, m.State, okWord(m.APIOK) + " " + m.APIURL, okWord(m.PGOK) + " " + m.PostgreSQL, strconv.Itoa(m.Timeline), lag})
		}
		if err := writeTable(f.IO, []string{"Member", "Role", "State", "REST API", "PostgreSQL", "TL", "Lag (bytes)"}, rows); err != nil {
			return err
		}
	}
	return nil
}

// secondsText renders a duration in seconds as "3ms", "1.5s"; "unknown" for nil.
func secondsText(s *float64) string {
	if s == nil {
		return "unknown"
	}
	return time.Duration(*s * float64(time.Second)).Round(time.Millisecond).String()
}

func okWord(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
