package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/pgherd/pgherd/pkg/connstr"
	"github.com/pgherd/pgherd/pkg/instance"
	"github.com/pgherd/pgherd/pkg/role"
	"github.com/pgherd/pgherd/pkg/safefs"
	"github.com/spf13/cobra"
)

// uriOptions are the flags of instance uri and patroni uri|env.
type uriOptions struct {
	role, database string
	withPassword   bool
	readOnly       bool
	format         string
}

func (o *uriOptions) flags(cmd *cobra.Command, password bool) {
	fl := cmd.Flags()
	fl.StringVar(&o.role, "role", "", "role to connect as (default: none in the URI, libpq's default)")
	fl.StringVar(&o.database, "database", "postgres", "database to connect to")
	if password {
		fl.BoolVar(&o.withPassword, "with-password", false, "put the role's password in the URI (from the pgpass files pgherd keeps; not with -o, which never holds one)")
	}
	outputFlag(cmd, &o.format)
}

// uriOutput is -o json of instance uri and patroni uri
// (pgherd.uri/v1): never a password.
type uriOutput struct {
	URI                string         `json:"uri"`
	Hosts              []connstr.Host `json:"hosts"`
	User               string         `json:"user"` // "": none given
	Database           string         `json:"database"`
	TargetSessionAttrs string         `json:"target_session_attrs"` // "" for an instance
}

// patroniEnvOutput is -o json of patroni env (pgherd.patroni-env/v1).
type patroniEnvOutput struct {
	Cluster   string            `json:"cluster"`
	Variables map[string]string `json:"variables"`
}

// keptPassword finds the password pgherd keeps for role on port: the
// instance's own pgpass (its superuser), else the sysuser's .pgpass.
func keptPassword(env *instance.Env, i *instance.Instance, port int, name string) (string, error) {
	for _, path := range []string{i.PassFile, ""} {
		if path == "" {
			pp, err := role.UserPgpass(env.User)
			if err != nil {
				return "", err
			}
			path = pp.Path
		}
		text, err := safefs.ReadOwned(path, env.User.FileOwner())
		if err != nil {
			return "", err
		}
		if pw, ok := connstr.PgpassLookup(text, port, name); ok {
			return pw, nil
		}
	}
	return "", fmt.Errorf("no password of role %q is kept on this host: keep one with 'pgherd role alter %s -i %s --password --pgpass', or leave out --with-password", name, name, i.ID())
}

// check refuses flags that contradict each other, before any work.
func (o *uriOptions) check() error {
	if err := checkOutput(o.format); err != nil {
		return err
	}
	if o.withPassword && o.format != "" {
		return usageError{fmt.Errorf("-o %s never holds a password: leave out --with-password (or -o)", o.format)}
	}
	return nil
}

func (o *uriOptions) print(f *Factory, env *instance.Env, i *instance.Instance, u connstr.URI) error {
	if o.withPassword {
		name := u.User
		if name == "" {
			return usageError{fmt.Errorf("--with-password needs --role ROLE")}
		}
		pw, err := keptPassword(env, i, u.Hosts[0].Port, name)
		if err != nil {
			return err
		}
		u.Password = pw
	}
	if o.format != "" {
		return writeData(f.IO.Out, o.format, uriOutput{URI: u.String(), Hosts: u.Hosts, User: u.User, Database: u.Database, TargetSessionAttrs: u.TargetSessionAttrs})
	}
	fmt.Fprintln(f.IO.Out, u.String())
	return nil
}

func newCmdInstanceURI(f *Factory) *cobra.Command {
	o := &uriOptions{}
	cmd := &cobra.Command{
		Use:   "uri NAME",
		Short: "Print a libpq URI of an instance (no password unless --with-password)",
		Args:  exactArgs(1, "one instance NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			return withInstance(f, args[0], func(env *instance.Env, i *instance.Instance) error {
				h, err := instanceHost(i)
				if err != nil {
					return err
				}
				return o.print(f, env, i, connstr.URI{Hosts: []connstr.Host{h}, User: o.role, Database: o.database})
			})
		},
	}
	o.flags(cmd, true)
	return cmd
}

// instanceHost is where clients reach an instance: a Patroni member's
// connect address, else its first listen address.
func instanceHost(i *instance.Instance) (connstr.Host, error) {
	if i.PatroniManaged() {
		cfg, _, err := i.PatroniClient()
		if err != nil {
			return connstr.Host{}, err
		}
		host, port, err := net.SplitHostPort(cfg.PostgreSQL.ConnectAddress)
		if err != nil {
			return connstr.Host{}, fmt.Errorf("Patroni connect_address %q: %w", cfg.PostgreSQL.ConnectAddress, err)
		}
		p, _ := strconv.Atoi(port)
		return connstr.Host{Host: host, Port: p}, nil
	}
	listen := "localhost"
	if e, auto := i.Conf.Lookup("listen_addresses"); auto != nil {
		listen = auto.Value
	} else if e != nil {
		listen = e.Value
	}
	hostname, _ := os.Hostname()
	return connstr.Host{Host: connstr.ListenHost(strings.Trim(listen, "'"), i.SocketDir, hostname), Port: i.Port}, nil
}

// newCmdPatroniURI builds patroni uri (env false) and patroni env.
func newCmdPatroniURI(f *Factory, env bool) *cobra.Command {
	o := &uriOptions{}
	use, short := "uri CLUSTER", "Print a libpq URI of every member of a Patroni cluster that reaches the leader (target_session_attrs=read-write)"
	if env {
		use, short = "env CLUSTER", "Print PGHOST/PGPORT lists (and PGTARGETSESSIONATTRS) that reach a Patroni cluster's leader"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs(1, "one CLUSTER name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			e, err := f.InstanceEnv()
			if err != nil {
				return err
			}
			i, u, err := clusterURI(cmd.Context(), e, args[0], o)
			if err != nil {
				return err
			}
			if !env {
				return o.print(f, e, i, u)
			}
			if o.format != "" {
				vars := map[string]string{}
				for _, kv := range u.Env() {
					k, v, _ := strings.Cut(kv, "=")
					vars[k] = v
				}
				return writeData(f.IO.Out, o.format, patroniEnvOutput{Cluster: args[0], Variables: vars})
			}
			fmt.Fprintln(f.IO.Out, strings.Join(u.Env(), "\n"))
			return nil
		},
	}
	o.flags(cmd, !env)
	cmd.Flags().BoolVar(&o.readOnly, "read-only", false, "reach a standby when one is up, else the leader (target_session_attrs=prefer-standby)")
	return cmd
}

// clusterURI lists a cluster's members through a local member's Patroni.
func clusterURI(ctx context.Context, env *instance.Env, cluster string, o *uriOptions) (*instance.Instance, connstr.URI, error) {
	i, err := instance.FindPatroniMember(env, cluster)
	if err != nil {
		return nil, connstr.URI{}, err
	}
	_, client, err := i.PatroniClient()
	if err != nil {
		return nil, connstr.URI{}, err
	}
	cl, err := client.Cluster(ctx)
	if err != nil {
		return nil, connstr.URI{}, fmt.Errorf("asking Patroni for the members of %s: %w", cluster, err)
	}
	u := connstr.URI{User: o.role, Database: o.database, TargetSessionAttrs: "read-write"}
	if o.readOnly {
		u.TargetSessionAttrs = "prefer-standby"
	}
	for _, m := range cl.Members {
		u.Hosts = append(u.Hosts, connstr.Host{Host: m.Host, Port: m.Port})
	}
	if len(u.Hosts) == 0 {
		return nil, connstr.URI{}, fmt.Errorf("Patroni cluster %s lists no member", cluster)
	}
	return i, u, nil
}
