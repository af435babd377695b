package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgherd/pgherd/pkg/instance"
	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/postgres"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// objectsTarget is where role, database and apply commands act: the
// instance named, or, for a member of a Patroni cluster, the cluster's
// current leader (nothing is ever written on a replica).
type objectsTarget struct {
	env  *instance.Env
	inst *instance.Instance // the instance named
	// conn reaches the primary as the superuser.
	conn postgres.ConnParams
	// protected maps the roles pgherd and Patroni connect as to why they
	// cannot be dropped or have their password changed here.
	protected map[string]string
}

// objectsTargetFor resolves ref and, for a Patroni member, its leader.
func objectsTargetFor(ctx context.Context, f *Factory, ref string) (*objectsTarget, error) {
	if ref == "" {
		return nil, usageError{errors.New("this command needs an instance: add -i NAME")}
	}
	env, err := f.InstanceEnv()
	if err != nil {
		return nil, err
	}
	i, err := instance.Find(env, ref)
	if err != nil {
		return nil, err
	}
	t := &objectsTarget{env: env, inst: i, conn: i.Conn(env), protected: map[string]string{}}
	su := env.Site.PostgreSQL.Surole.Name
	t.protected[su] = "pgherd connects as this superuser"
	t.protected[env.Site.PostgreSQL.Replrole.Name] = "it is the site's replication role (site.yaml postgresql.replrole)"
	if !i.PatroniManaged() {
		if i.State() != instance.Started {
			return nil, fmt.Errorf("instance %s is not running: start it with 'pgherd instance start %s'", i.ID(), i.ID())
		}
		return t, nil
	}
	cfg, client, err := i.PatroniClient()
	if err != nil {
		return nil, err
	}
	a := cfg.PostgreSQL.Authentication
	for _, u := range []struct{ name, what string }{{a.Superuser.Username, "superuser"}, {a.Replication.Username, "replication"}, {a.Rewind.Username, "rewind"}} {
		if u.name != "" {
			t.protected[u.name] = fmt.Sprintf("Patroni connects as this role (its %s) in cluster %s; its password lives in the cluster's credentials file", u.what, cfg.Scope)
		}
	}
	cl, err := client.Cluster(ctx)
	if err != nil {
		return nil, fmt.Errorf("asking Patroni which member of %s leads: %w", cfg.Scope, err)
	}
	leader, ok := cl.Leader()
	if !ok {
		return nil, fmt.Errorf("Patroni cluster %s has no leader now: nothing can be written; retry when 'pgherd patroni list %s' shows one", cfg.Scope, cfg.Scope)
	}
	if leader.Name == cfg.Name {
		return t, nil
	}
	logging.From(ctx).Info(fmt.Sprintf("instance %s is a replica of Patroni cluster %s: running on the leader %s (%s:%d)", i.ID(), cfg.Scope, leader.Name, leader.Host, leader.Port))
	if local, err := instance.FindPatroniMemberNamed(env, cfg.Scope, leader.Name); err == nil {
		t.conn = local.Conn(env)
		return t, nil
	}
	// The leader is on another host: over TCP, with the cluster's
	// superuser password that this member's pgpass holds.
	t.conn.SocketDir, t.conn.Port = leader.Host, leader.Port
	return t, nil
}

// connect opens a superuser connection to database db ("": postgres) on
// the target's primary.
func (t *objectsTarget) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	p := t.conn
	p.Database = db
	return postgres.Connect(ctx, p)
}

// forEachDatabase runs fn on a connection to each database of dbs.
func (t *objectsTarget) forEachDatabase(ctx context.Context, dbs []string, fn func(*pgx.Conn) error) error {
	for _, db := range dbs {
		c, err := t.connect(ctx, db)
		if err != nil {
			return err
		}
		err = fn(c)
		c.Close(ctx)
		if err != nil {
			return fmt.Errorf("database %q: %w", db, err)
		}
	}
	return nil
}

// readPassword reads a password: from file when given, else asked twice
// on a terminal with echo off, else the first line of stdin. Never from
// argv or the environment, which end up in logs and process listings.
func readPassword(f *Factory, file, who string) (string, error) {
	if file != "" {
		return readSecretFile(file)
	}
	in, isFile := f.IO.In.(*os.File)
	if !f.IO.CanPrompt() || !isFile {
		line, err := bufio.NewReader(f.IO.In).ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if err != nil && !errors.Is(err, io.EOF) {
				return "", fmt.Errorf("reading the password from stdin: %w", err)
			}
			return "", errors.New("no password on stdin: give it on the first line of stdin, or use --password-file FILE")
		}
		return line, nil
	}
	ask := func(prompt string) (string, error) {
		fmt.Fprint(f.IO.ErrOut, prompt)
		fd := int(in.Fd())
		old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			return "", err
		}
		noEcho := *old
		noEcho.Lflag &^= unix.ECHO
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
			return "", err
		}
		line, rerr := bufio.NewReader(in).ReadString('\n')
		_ = unix.IoctlSetTermios(fd, unix.TCSETS, old)
		fmt.Fprintln(f.IO.ErrOut)
		return strings.TrimRight(line, "\r\n"), rerr
	}
	pw, err := ask("Password for " + who + ": ")
	if err != nil {
		return "", err
	}
	again, err := ask("Repeat it: ")
	if err != nil {
		return "", err
	}
	if pw != again || pw == "" {
		return "", errors.New("the two passwords differ or are empty: nothing was changed")
	}
	return pw, nil
}

// withObjectsConn resolves the target of ref, connects to its primary's
// postgres database and runs fn.
func withObjectsConn(ctx context.Context, f *Factory, ref string, fn func(*objectsTarget, *pgx.Conn) error) error {
	t, err := objectsTargetFor(ctx, f, ref)
	if err != nil {
		return err
	}
	conn, err := t.connect(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return fn(t, conn)
}

// objectsShow describes a read-only verb of role, database or pghba: get
// reads what to print from the target's primary, table prints it when no
// -o is given.
type objectsShow[T any] struct {
	use, short string
	args       cobra.PositionalArgs
	flags      func(*cobra.Command)
	get        func(ctx context.Context, t *objectsTarget, conn *pgx.Conn, args []string) (T, error)
	table      func(T) error
}

// newCmdObjectsShow builds the verb s describes, with -o json|yaml.
func newCmdObjectsShow[T any](f *Factory, inst *string, s objectsShow[T]) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   s.use,
		Short: s.short,
		Args:  s.args,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			ctx := cmd.Context()
			return withObjectsConn(ctx, f, *inst, func(t *objectsTarget, conn *pgx.Conn) error {
				v, err := s.get(ctx, t, conn, args)
				if err != nil {
					return err
				}
				if format != "" {
					return writeData(f.IO.Out, format, v)
				}
				return s.table(v)
			})
		},
	}
	if s.flags != nil {
		s.flags(cmd)
	}
	outputFlag(cmd, &format)
	return cmd
}

// droppedOutput is -o json of role drop and database drop.
type droppedOutput struct {
	Name    string `json:"name"`
	Dropped bool   `json:"dropped"` // false: it did not exist (--if-exists)
}

// printDropped says what a drop did, as text or as -o json|yaml.
func printDropped(f *Factory, format, kind, name string, dropped bool) error {
	if format != "" {
		return writeData(f.IO.Out, format, droppedOutput{Name: name, Dropped: dropped})
	}
	if !dropped {
		fmt.Fprintf(f.IO.Out, "%s %s does not exist: nothing to do\n", kind, name)
		return nil
	}
	fmt.Fprintf(f.IO.Out, "%s %s dropped\n", kind, name)
	return nil
}
