// Package backup backs up and restores PostgreSQL instances and Patroni
// clusters with pgBackRest: one stanza per instance or cluster, described
// in a pgBackRest file that pgherd writes, WAL archived with archive-push,
// backups listed from `pgbackrest info`, and restores made into a new
// directory that replaces the old one only once the server has recovered
// (pkg/instance orchestrates a cluster's restore from these phases). See
// DESIGN.md.
package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/pgherd/pgherd/pkg/postgres"
	"github.com/pgherd/pgherd/pkg/run"
	"github.com/pgherd/pgherd/pkg/site"
)

// ErrDisabled is returned when the site has no pgbackrest: section.
var ErrDisabled = errors.New("backups are off on this host: add a pgbackrest: section to site.yaml (see docs/backup.md)")

// Env is what backup operations need from the host.
type Env struct {
	Site   *site.Settings
	User   site.SysUser // the account PostgreSQL and pgBackRest run as
	Runner run.Runner   // runs programs as User
}

// Instance is an instance as pgBackRest sees it: its stanza and where its
// server and files are.
type Instance struct {
	ID      string // VERSION/NAME
	Version string
	Name    string
	DataDir string
	WALDir  string
	// Conn reaches the running server as the superuser; pgBackRest uses
	// its socket directory, port and user.
	Conn postgres.ConnParams
	// Cluster is the Patroni scope of a member, "" for a plain instance.
	// A member's stanza and pgBackRest file are its cluster's.
	Cluster string
	// Members are the cluster's members on this host, pg1..pgN of the
	// cluster's pgBackRest file in this order; nil for a plain instance.
	Members []Member
}

// Member is one Patroni member on this host, as pgBackRest reaches it.
type Member struct {
	Name    string
	DataDir string
	Conn    postgres.ConnParams
}

// Stanza is the instance's stanza: VERSION-NAME, as in pglift; a Patroni
// member's is its cluster's scope.
func (i Instance) Stanza() string {
	if i.Cluster != "" {
		return i.Cluster
	}
	return i.Version + "-" + i.Name
}

// fileName is the {name} of the site's pgBackRest paths: the instance's,
// or "cluster.SCOPE" for a member (no instance name has a dot).
func (i Instance) fileName() string {
	if i.Cluster != "" {
		return "cluster." + i.Cluster
	}
	return i.Name
}

// what names the instance, or the member's cluster, in messages.
func (i Instance) what() string {
	if i.Cluster != "" {
		return "Patroni cluster " + i.Cluster
	}
	return "instance " + i.ID
}

// members are the servers of the pgBackRest file: a plain instance's own,
// or the cluster's members on this host.
func (i Instance) members() []Member {
	if i.Cluster != "" {
		return i.Members
	}
	return []Member{{Name: i.Name, DataDir: i.DataDir, Conn: i.Conn}}
}

// Enabled reports whether the site turns pgBackRest on.
func (e *Env) Enabled() bool { return e.Site.PgBackRest != nil }

func (e *Env) settings() (*site.PgBackRest, error) {
	if e.Site.PgBackRest == nil {
		return nil, ErrDisabled
	}
	return e.Site.PgBackRest, nil
}

// ConfigFile is the instance's pgBackRest file.
func (e *Env) ConfigFile(i Instance) string {
	return site.Path(e.Site.Prefix, e.Site.PgBackRest.Configpath, i.Version, i.fileName())
}

// ownedSettings are the settings that archive WAL into the repository:
// pgherd sets them when pgBackRest is on, and a different value would
// silently stop the archive that point-in-time restores depend on.
var ownedSettings = []string{"archive_mode", "archive_command", "archive_library"}

// CheckOwned refuses a change to a setting pgherd owns on an instance
// whose WAL it archives: pgBackRest is on and the instance has its
// pgBackRest file (a standby, or an instance made before, has none).
func (e *Env) CheckOwned(i Instance, name string) error {
	if e.Enabled() && slices.Contains(ownedSettings, strings.ToLower(name)) && fileExists(e.ConfigFile(i)) {
		return fmt.Errorf("%s is set by pgherd, which archives WAL with pgBackRest (site.yaml pgbackrest:): it cannot be changed", strings.ToLower(name))
	}
	return nil
}

// ArchiveSettings are the postgresql.conf settings that archive the
// instance's WAL into its stanza.
func (e *Env) ArchiveSettings(i Instance) [][2]string {
	return [][2]string{
		{"archive_mode", "on"},
		{"archive_command", quote(e.command(i, "archive-push") + " %p")},
	}
}

// ClusterArchiveCommand is a Patroni cluster's archive_command, for its
// cluster-wide configuration: whichever member is primary archives into
// the cluster's stanza. pgBackRest reads the server's pg_control in
// pg1-path, and PostgreSQL runs the command in the data directory, so
// pg1-path is that directory ($PWD): with several members on one host,
// the file's pg1 is not always the member that archives.
func (e *Env) ClusterArchiveCommand(i Instance) string {
	return e.command(i, `--pg1-path="$PWD" archive-push "$PWD/%p"`)
}

// ReplicaCommands are what a Patroni member given by its data directory
// runs to be created from the cluster's latest backup (Patroni's
// create_replica_methods) and to fetch archived WAL (restore_command).
// Both name the member's own directory as pg1-path.
func (e *Env) ReplicaCommands(i Instance, dataDir string) (create, restoreCommand string) {
	pg1 := "--pg1-path=" + dataDir
	return e.command(i, pg1+" --delta --type=standby restore"), e.command(i, pg1+` archive-get %f "%p"`)
}

// command is the pgbackrest command line for the stanza, as a shell
// string (archive_command, restore_command).
func (e *Env) command(i Instance, verb string) string {
	return fmt.Sprintf("%s --config=%s --stanza=%s %s", e.Site.PgBackRest.Execpath, e.ConfigFile(i), i.Stanza(), verb)
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// config renders the instance's pgBackRest file: pgherd's own options
// first, then the site's pass-through options, all sorted.
func (e *Env) config(i Instance) string {
	p := e.Site.PgBackRest
	global := map[string]string{
		"repo1-path": site.Path(e.Site.Prefix, p.Repository.Path, i.Version, i.fileName()),
		"log-path":   site.Path(e.Site.Prefix, p.Logpath, i.Version, i.fileName()),
		"lock-path":  e.runDir(),
		"spool-path": filepath.Join(e.runDir(), "spool"),
		"start-fast": "y",
	}
	for k, v := range p.Repository.Options {
		global[k] = v
	}
	var b strings.Builder
	b.WriteString("# Written by pgherd for " + i.what() + "; changes are lost at the next write.\n[global]\n")
	writeSorted(&b, global)
	fmt.Fprintf(&b, "\n[%s]\n", i.Stanza())
	for k, m := range i.members() {
		n := "pg" + strconv.Itoa(k+1)
		if i.Cluster != "" {
			fmt.Fprintf(&b, "# member %s\n", m.Name)
		}
		writeSorted(&b, map[string]string{
			n + "-path":        m.DataDir,
			n + "-port":        strconv.Itoa(m.Conn.Port),
			n + "-socket-path": m.Conn.SocketDir,
			n + "-user":        m.Conn.User,
		})
	}
	return b.String()
}

func (e *Env) runDir() string { return filepath.Join(e.Site.RunPrefix, "pgbackrest") }

func writeSorted(b *strings.Builder, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(b, "%s=%s\n", k, m[k])
	}
}

// pgbackrest runs one pgBackRest command on the stanza as the instance's
// account. A failure is one line: the command and pgBackRest's own ERROR.
func (e *Env) pgbackrest(ctx context.Context, i Instance, verb string, args ...string) (string, error) {
	argv := append([]string{e.Site.PgBackRest.Execpath, "--config=" + e.ConfigFile(i), "--stanza=" + i.Stanza()}, args...)
	argv = append(argv, verb)
	c := run.Cmd{Args: argv, Dir: "/"}
	if i.Conn.PassFile != "" {
		// The superuser's password, when local connections need one.
		c.Env = append(os.Environ(), "PGPASSFILE="+i.Conn.PassFile)
	}
	res, err := e.Runner.Run(ctx, c)
	if err != nil {
		var re *run.Error
		if errors.As(err, &re) {
			return res.Stdout, &Error{Verb: verb, Message: errorLine(res.Stdout + "\n" + res.Stderr), Code: re.ExitCode}
		}
		return res.Stdout, err
	}
	return res.Stdout, nil
}

// Error is a failed pgBackRest command.
type Error struct {
	Verb    string
	Code    int
	Message string // pgBackRest's ERROR line, with its hint
}

func (e *Error) Error() string {
	return fmt.Sprintf("pgbackrest %s failed: %s", e.Verb, e.Message)
}

// Compiled when first used: only a failure or a progress line needs it.
var logPrefix = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ P\d+ +)?`)
})

// errorLine returns pgBackRest's ERROR message as one line, with its
// first HINT (the others are generic).
func errorLine(out string) string {
	var msg []string
	in, hinted := false, false
	for _, l := range strings.Split(out, "\n") {
		l = logPrefix().ReplaceAllString(l, "")
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "ERROR:"):
			in = true
			msg = append(msg, t)
		case in && strings.HasPrefix(t, "HINT:"):
			if !hinted {
				msg = append(msg, "("+t+")")
			}
			hinted = true
		case in && t != "" && (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")):
			msg = append(msg, t)
		default:
			in = false
		}
	}
	if len(msg) == 0 {
		return strings.Join(strings.Fields(out), " ")
	}
	return strings.Join(msg, " ")
}
