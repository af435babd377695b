package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newCmdDcs(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dcs",
		Short: "Run pgherd's embedded DCS: an etcd-v3-compatible store on Raft for Patroni",
	}
	cmd.AddCommand(newCmdDcsSetup(f, false), newCmdDcsSetup(f, true), newCmdDcsMembers(f),
		newCmdDcsStatus(f), newCmdDcsLeave(f), newCmdDcsEnv(f), newCmdDcsToken(f), newCmdDcsCert(f), newCmdDcsTLS(f), newCmdDcsServe(f),
		newCmdDcsSnapshot(f), newCmdDcsRestore(f), newCmdDcsRecover(f),
		newCmdMemberLifecycle(f, "start", "", "Start a member set up here and wait until it follows a leader (nothing to do when it runs)"),
		newCmdMemberLifecycle(f, "stop", "", "Stop a member set up here, its supervision first (nothing to do when it is stopped)"),
		newCmdMemberLifecycle(f, "restart", "", "Stop then start a member set up here"))
	return cmd
}

// dcsLocal returns the manager of this host's members, under <prefix>/dcs.
func (f *Factory) dcsLocal() (*dcs.Local, error) {
	s, err := f.Settings()
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find the pgherd binary for the service: %w", err)
	}
	u, err := s.MemberUser()
	if err != nil {
		return nil, err
	}
	// PostgreSQL's account owns Patroni's DCS credential; a host with no
	// sysuser (a witness's, as root) has no Patroni.
	pg, _ := s.ResolveUser()
	return &dcs.Local{Dir: filepath.Join(s.Prefix, "dcs"), Exec: exe, Services: f.Services(&s.Settings), User: u.Service(), PatroniUser: pg.Service(),
		QuotaBytes: s.Patroni.DCS.Embedded.QuotaBytes, Snapshots: dcs.ScheduleOf(s.Prefix, s.Patroni.DCS.Embedded.Snapshots),
		Plain: !s.Patroni.DCS.Embedded.TLS, Credentials: s.PatroniCredentialsGlob()}, nil
}

type dcsSetupOptions struct {
	cfg   dcs.Config
	peer  string
	token string
}

func addMemberFlags(fl *pflag.FlagSet, c *dcs.Config) {
	fl.StringVar(&c.Name, "name", "", "member name, unique in the cluster (required)")
	fl.StringVar(&c.ListenPeer, "listen-peer", "", "HOST:PORT for Raft and cluster RPCs (required)")
	fl.StringVar(&c.ListenClient, "listen-client", "", "HOST:PORT for the etcd v3 API (required)")
	fl.StringVar(&c.DataDir, "data-dir", "", "data directory (default: <prefix>/dcs/NAME)")
	fl.StringVar(&c.Zone, "zone", "", "failure domain of this host")
	fl.StringVar(&c.Role, "role", dcs.RoleData, "data (beside PostgreSQL) or witness")
	fl.StringVar(&c.AdvertisePeer, "advertise-peer", "", "HOST:PORT other members dial (default: --listen-peer)")
	fl.StringVar(&c.AdvertiseClient, "advertise-client", "", "URL clients are given (default: http(s)://LISTEN-CLIENT)")
	fl.StringVar(&c.PeerTLS.Cert, "cert", "", "your own PEM certificate for both ports instead of the cluster's CA (CN the member's name, OU its role)")
	fl.StringVar(&c.PeerTLS.Key, "key", "", "PEM private key of --cert")
	fl.StringVar(&c.PeerTLS.CA, "ca", "", "PEM CA: verify client and peer certificates against it")
}

func newCmdDcsSetup(f *Factory, join bool) *cobra.Command {
	o := &dcsSetupOptions{}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Bootstrap a new one-member DCS cluster here and start it through the service manager",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.cfg.Name == "" || o.cfg.ListenPeer == "" || o.cfg.ListenClient == "" {
				return usageError{fmt.Errorf("--name, --listen-peer and --listen-client are required")}
			}
			if err := checkFixedPorts(o.cfg.ListenPeer, o.cfg.ListenClient); err != nil {
				return err
			}
			if join {
				if o.peer == "" {
					return usageError{fmt.Errorf("--peer is required: the peer address of any member")}
				}
				o.cfg.Join = []string{o.peer}
				if o.token == "" {
					o.token = os.Getenv("PGHERD_DCS_TOKEN")
				}
				if _, err := dcs.ParseToken(o.token); o.token != "" && err != nil {
					return usageError{fmt.Errorf("--token: %w", err)}
				}
			}
			o.cfg.ClientTLS = o.cfg.PeerTLS
			return runDcsSetup(cmd.Context(), f, o)
		},
	}
	if join {
		cmd.Use = "join"
		cmd.Short = "Set up a member here and join it to a DCS cluster through any existing member"
		cmd.Flags().StringVar(&o.peer, "peer", "", "HOST:PORT of any member's peer port (required)")
		cmd.Flags().StringVar(&o.token, "token", "", "join token from `pgherd dcs token create` on the host of the member --peer names (default $PGHERD_DCS_TOKEN; not needed on a data member's host)")
	}
	addMemberFlags(cmd.Flags(), &o.cfg)
	return cmd
}

func runDcsSetup(ctx context.Context, f *Factory, o *dcsSetupOptions) error {
	l, err := f.dcsLocal()
	if err != nil {
		return err
	}
	l.JoinToken = o.token
	mi, err := l.Setup(ctx, o.cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(f.IO.Out, "member %s is up (%s, leader %s, term %d); config %s\n", mi.Name, mi.RaftState, mi.Leader, mi.Term, l.ConfigFile(mi.Name))
	return nil
}

// checkFixedPorts refuses an address that is not HOST:PORT with a port
// other than 0: a member's addresses must survive its restarts.
func checkFixedPorts(addrs ...string) error {
	for _, a := range addrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "0" {
			return usageError{fmt.Errorf("%q is not HOST:PORT with a fixed port", a)}
		}
	}
	return nil
}

// dcsAdmin opens an admin client: through --peer, or to a local member.
// With --peer and no --cert, it presents this host's administrator
// credential when there is one.
func dcsAdmin(f *Factory, peer, name string, cert, key, ca string) (*dcs.AdminClient, error) {
	l, err := f.dcsLocal()
	if err != nil {
		return nil, err
	}
	if peer != "" {
		return dcs.NewAdminClient(peer, peerCreds(l, cert, key, ca))
	}
	ac, _, err := l.Admin(name)
	return ac, err
}

func peerCreds(l *dcs.Local, cert, key, ca string) dcs.TLSConfig {
	if cert == "" {
		if t, ok := l.AdminTLS(); ok {
			return t
		}
	}
	return dcs.TLSConfig{Cert: cert, Key: key, CA: ca}
}

type dcsAdminFlags struct{ peer, cert, key, ca string }

func (a *dcsAdminFlags) add(fl *pflag.FlagSet) {
	fl.StringVar(&a.peer, "peer", "", "HOST:PORT of a member's peer port (default: the member set up here)")
	fl.StringVar(&a.cert, "cert", "", "PEM client certificate when the peer port uses TLS")
	fl.StringVar(&a.key, "key", "", "its private key")
	fl.StringVar(&a.ca, "ca", "", "PEM CA of the members")
}

func newCmdDcsMembers(f *Factory) *cobra.Command {
	var a dcsAdminFlags
	var format string
	cmd := &cobra.Command{
		Use:   "members [NAME]",
		Short: "List the DCS members with their role, vote, Raft state and health (through member NAME set up here, or --peer)",
		Args:  maxArgs(1, "at most one member NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			ac, err := dcsAdmin(f, a.peer, argOrEmpty(args), a.cert, a.key, a.ca)
			if err != nil {
				return err
			}
			defer ac.Close()
			ms, err := ac.Members(cmd.Context())
			if err != nil {
				return err
			}
			if l, err := f.dcsLocal(); err == nil {
				l.Annotate(cmd.Context(), ms)
			}
			return writeMembers(f, format, ms)
		},
	}
	a.add(cmd.Flags())
	outputFlag(cmd, &format)
	return cmd
}

// argOrEmpty is the optional argument args may hold.
func argOrEmpty(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	return ""
}

func newCmdDcsStatus(f *Factory) *cobra.Command {
	var a dcsAdminFlags
	var format string
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show a member's own Raft view (exit code 3 when it does not answer or has no leader)",
		Args:  maxArgs(1, "at most one member NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			var ac *dcs.AdminClient
			var cfg dcs.Config
			var err error
			if a.peer != "" {
				ac, err = dcsAdmin(f, a.peer, "", a.cert, a.key, a.ca)
			} else if l, lerr := f.dcsLocal(); lerr != nil {
				err = lerr
			} else {
				ac, cfg, err = l.Admin(argOrEmpty(args))
			}
			if err != nil {
				return err
			}
			defer ac.Close()
			mi, err := ac.Status(cmd.Context())
			if err != nil {
				return &ExitCodeError{Code: ExitStopped, Err: err}
			}
			certs, err := cfg.CertExpiries()
			if err != nil {
				return err
			}
			if format != "" {
				return writeData(f.IO.Out, format, struct {
					dcs.MemberInfo
					Certificates []dcs.CertExpiry `json:"certificates,omitempty"`
				}{mi, certs})
			}
			fmt.Fprintf(f.IO.Out, "member %s: %s, leader %q, term %d, applied %d, commit %d\n",
				mi.Name, mi.RaftState, mi.Leader, mi.Term, mi.AppliedIndex, mi.CommitIndex)
			if mi.HostAwareRevocations > 0 {
				fmt.Fprintf(f.IO.Out, "host-aware revocations by this member since it started: %d\n", mi.HostAwareRevocations)
			}
			for _, c := range certs {
				fmt.Fprintf(f.IO.Out, "%s certificate expires %s (%s)\n", c.Port, c.Expires.Format(time.RFC3339), c.File)
			}
			for _, a := range mi.Alarms {
				fmt.Fprintf(f.IO.Out, "alarm %s: writes are refused; free space (delete keys, etcdctl compaction), then etcdctl alarm disarm\n", a)
			}
			if mi.Leader == "" {
				return &ExitCodeError{Code: ExitStopped}
			}
			return nil
		},
	}
	a.add(cmd.Flags())
	outputFlag(cmd, &format)
	return cmd
}

func newCmdDcsLeave(f *Factory) *cobra.Command {
	var a dcsAdminFlags
	cmd := &cobra.Command{
		Use:   "leave NAME",
		Short: "Remove member NAME from its DCS cluster; stop its service if it runs here",
		Args:  exactArgs(1, "one member NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := f.dcsLocal()
			if err != nil {
				return err
			}
			var ac *dcs.AdminClient
			if a.peer != "" {
				ac, err = dcs.NewAdminClient(a.peer, peerCreds(l, a.cert, a.key, a.ca))
			} else {
				ac, err = l.AdminOther(args[0])
			}
			if err != nil {
				return err
			}
			defer ac.Close()
			if err := ac.Leave(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(f.IO.Out, "member %s left the cluster\n", args[0])
			if _, err := os.Stat(l.ConfigFile(args[0])); err != nil {
				return nil
			}
			kept, err := l.StopLocal(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(f.IO.Out, "its service is stopped and removed; kept %v\n", kept)
			return l.DropTrust(cmd.Context(), args[0])
		},
	}
	a.add(cmd.Flags())
	return cmd
}

func newCmdDcsServe(f *Factory) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Run a DCS member in the foreground (what the service manager runs)",
		Long: "Run a DCS member in the foreground: this command replaces itself with the pgherd-dcs binary\n" +
			"beside pgherd (pgherd-dcs --config FILE), which is what the service manager runs.",
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageError{fmt.Errorf("--config is required")}
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			daemon, err := dcs.Daemon(exe)
			if err != nil {
				return err
			}
			argv := []string{daemon, "--config", file}
			for _, name := range []string{"log-level", "quiet"} {
				if fl := cmd.Flags().Lookup(name); fl != nil && fl.Changed {
					argv = append(argv, "--"+name+"="+fl.Value.String())
				}
			}
			return syscall.Exec(daemon, argv, os.Environ())
		},
	}
	cmd.Flags().StringVar(&file, "config", "", "member configuration file (YAML)")
	return cmd
}

// dcsEnv is what etcdctl needs to reach the cluster as its administrator.
type dcsEnv struct{ Endpoints, CACert, Cert, Key string }

func newCmdDcsEnv(f *Factory) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "env [NAME]",
		Short: "Print the ETCDCTL_* variables that let etcdctl reach the DCS as its administrator (eval \"$(pgherd dcs env)\")",
		Args:  maxArgs(1, "at most one member NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			l, err := f.dcsLocal()
			if err != nil {
				return err
			}
			ac, cfg, err := l.Admin(argOrEmpty(args))
			if err != nil {
				return err
			}
			defer ac.Close()
			var e dcsEnv
			if cfg.ClientTLS.Enabled() {
				t, ok := l.AdminClientTLS()
				if !ok {
					return fmt.Errorf("this host holds no administrator credential of the DCS (only data members' hosts do): run pgherd dcs env on one of them")
				}
				e.CACert, e.Cert, e.Key = t.CA, t.Cert, t.Key
			}
			e.Endpoints = cfg.AdvertiseClient
			if ms, err := ac.Members(cmd.Context()); err == nil {
				var urls []string
				for _, m := range ms {
					if m.ClientURL != "" {
						urls = append(urls, m.ClientURL)
					}
				}
				e.Endpoints = strings.Join(urls, ",")
			}
			if e.Endpoints == "" {
				e.Endpoints = cfg.ListenClient
			}
			vars := [][2]string{{"ETCDCTL_API", "3"}, {"ETCDCTL_ENDPOINTS", e.Endpoints}, {"ETCDCTL_CACERT", e.CACert}, {"ETCDCTL_CERT", e.Cert}, {"ETCDCTL_KEY", e.Key}}
			if format != "" {
				m := map[string]string{}
				for _, kv := range vars {
					if kv[1] != "" {
						m[kv[0]] = kv[1]
					}
				}
				return writeData(f.IO.Out, format, map[string]any{"member": cfg.Name, "variables": m})
			}
			for _, kv := range vars {
				if kv[1] != "" {
					fmt.Fprintf(f.IO.Out, "export %s=%s\n", kv[0], shellQuote(kv[1]))
				}
			}
			return nil
		},
	}
	outputFlag(cmd, &format)
	return cmd
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

type dcsTokenOptions struct {
	role   string
	ttl    time.Duration
	format string
}

func newCmdDcsToken(f *Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Join tokens: what a host without the cluster's files needs to add a member"}
	o := &dcsTokenOptions{}
	create := &cobra.Command{
		Use:   "create",
		Short: "Print a single-use join token for one new member, pinned to this cluster's CA (dcs join --token)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(o.format); err != nil {
				return err
			}
			if o.role != dcs.RoleData && o.role != dcs.RoleWitness {
				return usageError{fmt.Errorf("--role %q: use %s or %s", o.role, dcs.RoleData, dcs.RoleWitness)}
			}
			if o.ttl <= 0 || o.ttl > 7*24*time.Hour {
				return usageError{fmt.Errorf("--ttl %s: want more than 0 and at most 168h", o.ttl)}
			}
			l, err := f.dcsLocal()
			if err != nil {
				return err
			}
			t, exp, err := l.CreateToken(o.role, o.ttl)
			if err != nil {
				return err
			}
			if o.format != "" {
				return writeData(f.IO.Out, o.format, map[string]any{"token": t.String(), "role": o.role, "expires": exp.UTC().Format(time.RFC3339)})
			}
			fmt.Fprintln(f.IO.Out, t.String())
			return nil
		},
	}
	create.Flags().StringVar(&o.role, "role", dcs.RoleWitness, "the member it admits: witness, or data (which also receives the cluster's CA)")
	create.Flags().DurationVar(&o.ttl, "ttl", dcs.DefaultTokenTTL, "how long it is valid (at most 168h)")
	outputFlag(create, &o.format)
	cmd.AddCommand(create)
	return cmd
}

func newCmdDcsCert(f *Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "cert", Short: "The certificates of this host's members"}
	cmd.AddCommand(&cobra.Command{
		Use:   "renew [NAME]",
		Short: "Reissue a member's certificates from the cluster's CA and restart it (one member at a time)",
		Args:  maxArgs(1, "at most one member NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := f.dcsLocal()
			if err != nil {
				return err
			}
			name := argOrEmpty(args)
			if name == "" {
				cfgs, err := l.Configs()
				if err != nil {
					return err
				}
				if len(cfgs) != 1 {
					return usageError{fmt.Errorf("%d members are set up here: name one", len(cfgs))}
				}
				name = cfgs[0].Name
			}
			certs, err := l.RenewCerts(cmd.Context(), name)
			if err != nil {
				return err
			}
			for _, c := range certs {
				fmt.Fprintf(f.IO.Out, "member %s: %s certificate renewed, expires %s; the member was restarted\n", name, c.Port, c.Expires.Format(time.RFC3339))
			}
			return nil
		},
	})
	return cmd
}
