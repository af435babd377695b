// Package instance is the PostgreSQL instance model and its lifecycle. There
// is no state database: an instance is its data directory, its
// configuration files and its running processes, read anew every time.
package instance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgherd/pgherd/pkg/names"
	"github.com/pgherd/pgherd/pkg/pgconf"
	"github.com/pgherd/pgherd/pkg/postgres"
	"github.com/pgherd/pgherd/pkg/run"
	"github.com/pgherd/pgherd/pkg/service"
	"github.com/pgherd/pgherd/pkg/site"
)

// ErrNotFound is returned for an instance that does not exist.
var ErrNotFound = errors.New("instance not found")

// Env is what instance operations need from the host.
type Env struct {
	Site     *site.Settings
	User     site.SysUser // the account PostgreSQL runs as
	Runner   run.Runner   // runs programs as User
	Services service.Manager
	// Pgherd is the pgherd binary the embedded DCS member's service runs.
	Pgherd string
}

// Instance is one PostgreSQL instance, identified by VERSION/NAME.
type Instance struct {
	Name    string
	Version string
	// Port and SocketDir are where the server listens: the running
	// server's own (postmaster.pid), else what its next start will use.
	Port      int
	SocketDir string
	// ConfPort is the port the next start will use (the files', or
	// Patroni's); it differs from Port while a port change waits for a
	// restart.
	ConfPort int
	DataDir  string
	WALDir   string
	LogDir   string
	BinDir   string
	// PassFile is the instance's pgpass file; it exists only when a superuser password was set.
	PassFile string
	// PatroniConfig is where the instance's Patroni YAML is when Patroni manages it (patroni.go).
	PatroniConfig string
	// Conf is the configuration as Find or List read it (nil for an
	// instance being created); pgconf.Target.Config takes it, so that a
	// command reads the files once.
	Conf *pgconf.Config
}

// ID is VERSION/NAME.
func (i *Instance) ID() string { return i.Version + "/" + i.Name }

// ConfFile is the main configuration file.
func (i *Instance) ConfFile() string { return filepath.Join(i.DataDir, "postgresql.conf") }

func (i *Instance) serviceName() string { return i.Version + "-" + i.Name }

// Service describes the postmaster for the service manager.
func (i *Instance) Service(env *Env) service.Service {
	s := service.Service{
		Kind:        "postgresql",
		Instance:    i.serviceName(),
		Exec:        []string{filepath.Join(i.BinDir, "postgres"), "-D", i.DataDir},
		LogFile:     filepath.Join(i.LogDir, i.serviceName()+"-start.log"),
		StopSignal:  stopSignal,
		Notify:      true,
		Description: "PostgreSQL instance " + i.ID(),
		User:        env.User.Service(),
	}
	return s
}

// Conn returns connection parameters for the superuser over the socket.
func (i *Instance) Conn(env *Env) postgres.ConnParams {
	return postgres.ConnParams{SocketDir: i.SocketDir, Port: i.Port, User: env.Site.PostgreSQL.Surole.Name, PassFile: i.existingPassFile()}
}

func (i *Instance) existingPassFile() string {
	if _, err := os.Stat(i.PassFile); err == nil {
		return i.PassFile
	}
	return ""
}

// paths fills the paths of version/name from the site templates.
func paths(s *site.Settings, version, name string) *Instance {
	pg := s.PostgreSQL
	return &Instance{
		Name:      name,
		Version:   version,
		DataDir:   site.Path(s.Prefix, pg.Datadir, version, name),
		WALDir:    site.Path(s.Prefix, pg.Waldir, version, name),
		LogDir:    site.Path(s.Prefix, pg.Logpath, version, name),
		SocketDir: site.Path(s.RunPrefix, pg.SocketDirectory, version, name),
		BinDir:    postgres.BinDir(pg.Bindir, version),
		PassFile:  filepath.Join(s.Prefix, "etc", "pgpass", version+"-"+name),

		PatroniConfig: site.Path(s.Prefix, s.Patroni.Configpath, version, name),
	}
}

// exists reports whether dir holds a PostgreSQL data directory.
func exists(datadir string) bool {
	_, err := os.Stat(filepath.Join(datadir, "PG_VERSION"))
	return err == nil
}

// Find resolves "VERSION/NAME" or "NAME" (when only one version has it).
func Find(env *Env, ref string) (*Instance, error) {
	version, name, hasVersion := strings.Cut(ref, "/")
	if !hasVersion {
		name, version = version, ""
	}
	if err := names.Check("instance", name); err != nil {
		return nil, err
	}
	if version != "" {
		i := paths(env.Site, version, name)
		if !exists(i.DataDir) {
			return nil, fmt.Errorf("%w: %s (no data directory %s); see 'pgherd instance list'", ErrNotFound, ref, i.DataDir)
		}
		return load(i)
	}
	var found []*Instance
	all, err := scan(env, name)
	if err != nil {
		return nil, err
	}
	for _, i := range all {
		if _, err := load(i); err != nil {
			return nil, err
		}
		found = append(found, i)
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w: %s; see 'pgherd instance list'", ErrNotFound, name)
	case 1:
		return found[0], nil
	}
	var ids []string
	for _, i := range found {
		ids = append(ids, i.ID())
	}
	return nil, fmt.Errorf("instance name %s is used by several versions (%s): name one as VERSION/NAME", name, strings.Join(ids, ", "))
}

// List returns every instance under the site's data directory template,
// sorted by version then name.
func List(env *Env) ([]*Instance, error) {
	all, err := scan(env, "")
	if err != nil {
		return nil, err
	}
	for _, i := range all {
		if _, err := load(i); err != nil {
			return nil, err
		}
	}
	return all, nil
}

// scan finds the data directories under the site's data directory
// template, sorted by version then name, without reading their files:
// every instance's, or only those of the instances called name (a valid
// name: no pattern character), which spares reading the directories of
// the others.
func scan(env *Env, name string) ([]*Instance, error) {
	tmpl := site.Path(env.Site.Prefix, env.Site.PostgreSQL.Datadir, "{version}", "{name}")
	globName, reName := "*", names.Pattern
	if name != "" {
		globName, reName = name, regexp.QuoteMeta(name)
	}
	glob := strings.NewReplacer("{version}", "*", "{name}", globName).Replace(tmpl)
	re := regexp.MustCompile("^" + strings.NewReplacer(`\{version\}`, `(?P<version>[0-9]+)`, `\{name\}`, `(?P<name>`+reName+`)`).Replace(regexp.QuoteMeta(tmpl)) + "$")
	matches, err := filepath.Glob(glob)
	if err != nil {
		return nil, err
	}
	var out []*Instance
	for _, m := range matches {
		sub := re.FindStringSubmatch(m)
		if sub == nil || !exists(m) {
			continue
		}
		out = append(out, paths(env.Site, sub[re.SubexpIndex("version")], sub[re.SubexpIndex("name")]))
	}
	sort.Slice(out, func(a, b int) bool {
		va, _ := strconv.Atoi(out[a].Version)
		vb, _ := strconv.Atoi(out[b].Version)
		if va != vb {
			return va < vb
		}
		return out[a].Name < out[b].Name
	})
	return out, nil
}

// load reads what the files say about an instance whose paths are known.
func load(i *Instance) (*Instance, error) {
	c, err := pgconf.Load(i.ConfFile(), i.DataDir)
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", i.ID(), err)
	}
	i.Conf = c
	i.WALDir, _ = walDir(i.DataDir) // where it is, whatever the template says today
	conf := fileSettings(c)
	i.Port = 5432
	if p, ok := conf["port"]; ok {
		if n, err := strconv.Atoi(p); err == nil {
			i.Port = n
		}
	}
	if n, ok := i.patroniPort(); ok {
		i.Port = n // Patroni passes the port on the command line
	}
	i.ConfPort = i.Port
	// A running server is reached where it listens, not where files that
	// may have changed since its start say.
	if p, ok := postgres.Running(i.DataDir); ok && p.Port > 0 {
		i.Port = p.Port
		if p.Socket != "" {
			i.SocketDir = p.Socket
		}
	}
	return i, nil
}

// State is "started" or "stopped".
type State string

// States.
const (
	Started State = "started"
	Stopped State = "stopped"
)

// State tells whether the postmaster runs.
func (i *Instance) State() State {
	if _, ok := postgres.Running(i.DataDir); ok {
		return Started
	}
	return Stopped
}

// Connect opens a superuser connection to a running instance.
func (i *Instance) Connect(ctx context.Context, env *Env) (*pgx.Conn, error) {
	return postgres.Connect(ctx, i.Conn(env))
}
