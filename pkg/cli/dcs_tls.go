package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/instance"
)

func newCmdDcsTLS(f *Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "tls", Short: "TLS of this host's members"}
	o := &dcsTLSEnableOptions{}
	enable := &cobra.Command{
		Use:   "enable",
		Short: "Switch a running plain-TCP DCS and this host's Patroni to mutual TLS, member by member",
		Long: `Switch a running plain-TCP embedded DCS (set up with patroni.dcs.embedded.tls: false) to
mutual TLS without stopping it. The clusters of this host's Patroni members still on http are
paused, this host's members are restarted one at a time serving TLS beside plain TCP, each
local Patroni gets a client certificate and protocol: https and is restarted (Patroni 3.0.2 reads its TLS settings
only when it starts; PostgreSQL keeps running), then, once every member of the cluster serves
TLS, this host's members are restarted on TLS only, and the clusters are resumed.

The first data member's host to run it makes the cluster's CA. Members on other hosts are
switched by running it on their hosts (a host without the CA gives --token and --peer); run
it again here afterwards to refuse plain TCP.
Run again after a failure, it goes on from where it stopped.`,
		Args: maxArgs(0, "no argument"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(o.format); err != nil {
				return err
			}
			if o.token == "" && o.peer != "" {
				o.token = os.Getenv("PGHERD_DCS_TOKEN")
			}
			if _, err := dcs.ParseToken(o.token); o.token != "" && err != nil {
				return usageError{fmt.Errorf("--token: %w", err)}
			}
			if (o.token == "") != (o.peer == "") {
				return usageError{errors.New("--token and --peer go together: the token of the host that switched first, and the peer address of one of its members")}
			}
			return runDcsTLSEnable(cmd.Context(), f, o)
		},
	}
	enable.Flags().StringVar(&o.token, "token", "", "join token from `pgherd dcs token create` on the host that switched first, for a host without the cluster's CA (default with --peer: $PGHERD_DCS_TOKEN)")
	enable.Flags().StringVar(&o.peer, "peer", "", "HOST:PORT, the peer address of a member of the host that printed --token")
	outputFlag(enable, &o.format)
	cmd.AddCommand(enable)
	return cmd
}

type dcsTLSEnableOptions struct {
	token, peer string
	format      string
}

func runDcsTLSEnable(ctx context.Context, f *Factory, o *dcsTLSEnableOptions) error {
	l, err := f.dcsLocal()
	if err != nil {
		return err
	}
	l.JoinToken = o.token
	req := instance.DCSTLSRequest{Local: l, Via: o.peer}
	env, err := f.InstanceEnv()
	if err != nil {
		// A witness's host may have no PostgreSQL account: only the
		// instances it would find need one.
		s, serr := f.Settings()
		if serr != nil {
			return serr
		}
		env, req.NoUser = &instance.Env{Site: &s.Settings, Services: f.Services(&s.Settings)}, err
	}
	res, err := instance.EnableDCSTLS(ctx, env, req)
	already := errors.Is(err, dcs.ErrTLSAlready)
	if already {
		res, err = &instance.DCSTLSResult{}, nil
	}
	switch {
	case o.format != "" && res != nil:
		if werr := writeData(f.IO.Out, o.format, dcsTLSData(res, err == nil && len(res.RemotePlain) == 0)); werr != nil {
			return werr
		}
	case already:
		fmt.Fprintln(f.IO.Out, "TLS is already enabled: this host's members speak TLS only and every member of the DCS serves TLS; nothing to do")
	case res != nil:
		printDcsTLS(f, res)
	}
	return err
}

// dcsTLSOutput is pgherd.dcs-tls-enable/v1 (docs/json.md).
type dcsTLSOutput struct {
	Paused        []string          `json:"paused_clusters"`
	Members       []dcsTLSRestarted `json:"members_restarted"`
	Patroni       []string          `json:"patroni_restarted"`
	Resumed       []string          `json:"resumed_clusters"`
	RemotePlain   []string          `json:"remote_plain"`
	TLSEverywhere bool              `json:"tls_everywhere"`
}

type dcsTLSRestarted struct {
	Name string `json:"name"`
	Mode string `json:"mode"` // tls_beside_plain or tls_only
}

// dcsTLSData is res as -o prints it; everywhere: every member serves TLS
// and this host's speak TLS only.
func dcsTLSData(res *instance.DCSTLSResult, everywhere bool) dcsTLSOutput {
	out := dcsTLSOutput{Paused: res.Paused, Patroni: res.Restarted, Resumed: res.Resumed, RemotePlain: res.RemotePlain, TLSEverywhere: everywhere}
	for _, m := range res.Accepting {
		out.Members = append(out.Members, dcsTLSRestarted{Name: m, Mode: "tls_beside_plain"})
	}
	for _, m := range res.TLSOnly {
		out.Members = append(out.Members, dcsTLSRestarted{Name: m, Mode: "tls_only"})
	}
	return out
}

func printDcsTLS(f *Factory, res *instance.DCSTLSResult) {
	out := f.IO.Out
	for _, c := range res.Paused {
		fmt.Fprintf(out, "Patroni cluster %s paused: Patroni 3.0.2 reads its DCS TLS settings only when it starts\n", c)
	}
	for _, m := range res.Accepting {
		fmt.Fprintf(out, "member %s restarted serving TLS beside plain TCP\n", m)
	}
	for _, i := range res.Restarted {
		fmt.Fprintf(out, "Patroni of instance %s restarted on https with its client certificate (PostgreSQL kept running)\n", i)
	}
	for _, m := range res.TLSOnly {
		fmt.Fprintf(out, "member %s restarted on TLS only\n", m)
	}
	for _, c := range res.Resumed {
		fmt.Fprintf(out, "Patroni cluster %s resumed\n", c)
	}
	if len(res.RemotePlain) > 0 {
		verb := "speaks"
		if len(res.RemotePlain) > 1 {
			verb = "speak"
		}
		fmt.Fprintf(out, "member %s on other hosts still %s plain TCP: run `pgherd dcs tls enable` on their hosts, then here again (this host's members accept plain TCP until then)\n", strings.Join(res.RemotePlain, ", "), verb)
	}
}
