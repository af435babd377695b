// Package site holds pgherd's site settings: every path template, default and
// policy that a host's administrator decides once in site.yaml.
//
// Settings are read in this order, later ones winning: built-in defaults,
// the site file, PGHERD_* environment variables. The file is decoded
// strictly, so an unknown key or a wrong type is an error that names the
// file, the line and the key.
package site

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pgherd/pgherd/pkg/safefs"
	"github.com/pgherd/pgherd/pkg/service"
	"github.com/pgherd/pgherd/pkg/supervise"
)

// Settings is the typed form of site.yaml.
type Settings struct {
	// Prefix is where data, configuration and logs live; relative paths below are resolved against it.
	Prefix string `yaml:"prefix" json:"prefix"`
	// RunPrefix is where runtime files (sockets, pidfiles) live.
	RunPrefix string `yaml:"run_prefix" json:"run_prefix"`
	// Sysuser is the system user PostgreSQL and Patroni run as when pgherd runs as root.
	Sysuser string `yaml:"sysuser" json:"sysuser"`
	// ServiceManager is auto, systemd or process.
	ServiceManager string `yaml:"service_manager" json:"service_manager"`
	// Systemd configures the systemd service manager.
	Systemd Systemd `yaml:"systemd" json:"systemd"`
	// Restart is the restart policy of both service managers.
	Restart Restart `yaml:"restart" json:"restart"`
	// PostgreSQL configures instances.
	PostgreSQL PostgreSQL `yaml:"postgresql" json:"postgresql"`
	// Patroni configures Patroni-managed instances (patroni.go).
	Patroni Patroni `yaml:"patroni" json:"patroni"`
	// PgBackRest, when set, backs up instances and Patroni clusters (pgbackrest.go).
	PgBackRest *PgBackRest `yaml:"pgbackrest" json:"pgbackrest"`
}

// Systemd configures where units go.
type Systemd struct {
	// UnitPath is the directory for generated units; empty means the standard one.
	UnitPath string `yaml:"unit_path" json:"unit_path"`
}

// Restart is the restart policy of every daemon pgherd runs, in seconds:
// the first restart comes Delay after a death, each next one twice as late
// up to MaxDelay (systemd: always Delay); a daemon that dies within
// StableAfter of its start counts as a failed try, and after MaxTries
// failed tries in a row it is given up.
type Restart struct {
	Delay       float64 `yaml:"delay" json:"delay"`
	MaxDelay    float64 `yaml:"max_delay" json:"max_delay"`
	MaxTries    int     `yaml:"max_tries" json:"max_tries"`
	StableAfter float64 `yaml:"stable_after" json:"stable_after"`
}

// Policy is r for the service managers.
func (r Restart) Policy() supervise.Policy {
	sec := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	return supervise.Policy{Delay: sec(r.Delay), MaxDelay: sec(r.MaxDelay), MaxTries: r.MaxTries, StableAfter: sec(r.StableAfter)}
}

// PostgreSQL holds the defaults and path templates of instances.
type PostgreSQL struct {
	DefaultVersion  string `yaml:"default_version" json:"default_version"`
	Bindir          string `yaml:"bindir" json:"bindir"`
	Datadir         string `yaml:"datadir" json:"datadir"`
	Waldir          string `yaml:"waldir" json:"waldir"`
	Logpath         string `yaml:"logpath" json:"logpath"`
	SocketDirectory string `yaml:"socket_directory" json:"socket_directory"`
	Port            int    `yaml:"port" json:"port"`
	Auth            Auth   `yaml:"auth" json:"auth"`
	Initdb          Initdb `yaml:"initdb" json:"initdb"`
	Surole          Role   `yaml:"surole" json:"surole"`
	Replrole        Role   `yaml:"replrole" json:"replrole"`
	// Dumpsdir is where 'database dump' writes pg_dump archives of an instance.
	Dumpsdir string `yaml:"dumps_directory" json:"dumps_directory"`
}

// Auth holds the default pg_hba methods.
type Auth struct {
	Local string `yaml:"local" json:"local"`
	Host  string `yaml:"host" json:"host"`
}

// Initdb holds initdb defaults.
type Initdb struct {
	Locale        string `yaml:"locale" json:"locale"`
	Encoding      string `yaml:"encoding" json:"encoding"`
	DataChecksums bool   `yaml:"data_checksums" json:"data_checksums"`
}

// Role names a PostgreSQL role that pgherd creates or uses.
type Role struct {
	Name string `yaml:"name" json:"name"`
}

// Defaults returns the built-in settings for the current user: root gets
// system paths, anyone else paths under their home and runtime directory.
func Defaults() Settings {
	s := Settings{
		ServiceManager: "auto",
		Restart:        Restart{Delay: 0.1, MaxDelay: 30, MaxTries: 5, StableAfter: 30},
		PostgreSQL: PostgreSQL{
			Bindir:          "/usr/lib/postgresql/{version}/bin",
			Datadir:         "srv/pgsql/{version}/{name}/data",
			Waldir:          "srv/pgsql/{version}/{name}/wal",
			Logpath:         "log/postgresql",
			SocketDirectory: "postgresql",
			Port:            5432,
			Auth:            Auth{Local: "peer", Host: "scram-sha-256"},
			Initdb:          Initdb{Locale: "C.UTF-8", Encoding: "UTF8", DataChecksums: true},
			Surole:          Role{Name: "postgres"},
			Replrole:        Role{Name: "replication"},
			Dumpsdir:        "srv/dumps/{version}-{name}",
		},
		Patroni: defaultPatroni(),
	}
	if os.Geteuid() == 0 {
		s.Prefix = "/var/lib/pgherd"
		s.RunPrefix = "/run/pgherd"
		return s
	}
	home, _ := os.UserHomeDir()
	data := os.Getenv("XDG_DATA_HOME")
	if data == "" {
		data = filepath.Join(home, ".local", "share")
	}
	s.Prefix = filepath.Join(data, "pgherd")
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" {
		s.RunPrefix = filepath.Join(rt, "pgherd")
	} else {
		// Under runuser or su there is no XDG_RUNTIME_DIR: fall back to a
		// per-user directory in /tmp, created 0700 (Load checks it).
		s.RunPrefix = fallbackRunPrefix()
	}
	return s
}

// Validate checks values that the types alone do not.
func (s *Settings) Validate() error {
	switch s.ServiceManager {
	case "auto", "systemd", "process":
	default:
		return fmt.Errorf("service_manager: %q is not one of auto, systemd, process", s.ServiceManager)
	}
	if r := s.Restart; r.Delay < 0.1 || r.MaxDelay < r.Delay || r.MaxTries < 1 || r.StableAfter < 0 {
		return fmt.Errorf("restart: delay %g, max_delay %g, max_tries %d, stable_after %g: want delay >= 0.1, max_delay >= delay, max_tries >= 1, stable_after >= 0",
			r.Delay, r.MaxDelay, r.MaxTries, r.StableAfter)
	}
	if s.PostgreSQL.Port < 1 || s.PostgreSQL.Port > 65535 {
		return fmt.Errorf("postgresql.port: %d is not a TCP port (1-65535)", s.PostgreSQL.Port)
	}
	if !filepath.IsAbs(s.Prefix) {
		return fmt.Errorf("prefix: %q must be an absolute path", s.Prefix)
	}
	if !filepath.IsAbs(s.RunPrefix) {
		return fmt.Errorf("run_prefix: %q must be an absolute path", s.RunPrefix)
	}
	if !strings.Contains(s.PostgreSQL.Datadir, "{name}") || !strings.Contains(s.PostgreSQL.Datadir, "{version}") {
		return fmt.Errorf("postgresql.datadir: %q must contain {version} and {name}", s.PostgreSQL.Datadir)
	}
	if err := s.Patroni.validate(); err != nil {
		return err
	}
	if s.PgBackRest != nil {
		if err := s.PgBackRest.validate(); err != nil {
			return err
		}
	}
	for _, m := range []struct{ key, v string }{{"postgresql.auth.local", s.PostgreSQL.Auth.Local}, {"postgresql.auth.host", s.PostgreSQL.Auth.Host}} {
		if !ValidAuthMethod(m.v) {
			return fmt.Errorf("%s: %q is not a pg_hba method (trust, reject, scram-sha-256, md5, password, peer, ident)", m.key, m.v)
		}
	}
	return nil
}

// ValidAuthMethod reports whether m is a pg_hba method pgherd accepts.
func ValidAuthMethod(m string) bool {
	switch m {
	case "trust", "reject", "scram-sha-256", "md5", "password", "peer", "ident":
		return true
	}
	return false
}

// Path resolves a path template: {version} and {name} are substituted and a
// relative result is taken relative to base.
func Path(base, tmpl, version, name string) string {
	p := strings.NewReplacer("{version}", version, "{name}", name).Replace(tmpl)
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

// SysUser is the system account that owns and runs PostgreSQL.
type SysUser struct {
	Name     string
	UID, GID uint32
	// Switch is true when pgherd runs as root and must drop to this user.
	Switch bool
}

// ErrRoot is returned when pgherd runs as root with no sysuser to run PostgreSQL as.
var ErrRoot = fmt.Errorf("PostgreSQL refuses to run as root and site setting sysuser is empty: set sysuser in site.yaml (or PGHERD_SYSUSER) to an unprivileged account, or run pgherd as that user")

// ResolveUser returns the account PostgreSQL work runs as: the current user,
// or sysuser when pgherd runs as root.
func (s *Settings) ResolveUser() (SysUser, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return SysUser{}, fmt.Errorf("cannot look up the current user: %w", err)
		}
		return toSysUser(u, false)
	}
	if s.Sysuser == "" {
		return SysUser{}, ErrRoot
	}
	u, err := user.Lookup(s.Sysuser)
	if err != nil {
		return SysUser{}, fmt.Errorf("sysuser %q: no such system user: create it (useradd --system %s) or fix sysuser in site.yaml", s.Sysuser, s.Sysuser)
	}
	su, err := toSysUser(u, true)
	if err == nil && su.UID == 0 {
		return SysUser{}, fmt.Errorf("sysuser %q is root: PostgreSQL refuses to run as root; pick an unprivileged account", s.Sysuser)
	}
	return su, err
}

// MemberUser returns the account this host's DCS members run as:
// patroni.dcs.embedded.sysuser when pgherd runs as root (an account of
// their own, not PostgreSQL's: a PostgreSQL superuser can then read none
// of their keys); otherwise the current user. An account that does not
// exist, or is root, is refused before anything is made.
func (s *Settings) MemberUser() (SysUser, error) {
	if os.Geteuid() != 0 {
		return s.ResolveUser()
	}
	name := s.Patroni.DCS.Embedded.Sysuser
	u, err := user.Lookup(name)
	if err != nil {
		return SysUser{}, fmt.Errorf("patroni.dcs.embedded.sysuser %q: no such system user: run `make deps` (or `useradd --system --user-group --shell /usr/sbin/nologin %s`), or name another account in site.yaml", name, name)
	}
	su, err := toSysUser(u, true)
	if err == nil && su.UID == 0 {
		return SysUser{}, fmt.Errorf("patroni.dcs.embedded.sysuser %q is root: DCS members run under an unprivileged account of their own (default pgherd-dcs)", name)
	}
	return su, err
}

// Service is the account a service runs as: u when pgherd switches to it,
// else nil (the current user).
func (u SysUser) Service() *service.User {
	if !u.Switch {
		return nil
	}
	return &service.User{Name: u.Name, UID: u.UID, GID: u.GID}
}

// FileOwner is u as the owner of the files pgherd reads and writes in its
// directories (safefs.ReadOwned, safefs.WriteOwned): handed to u, and
// checked to be u's, when pgherd switches to u.
func (u SysUser) FileOwner() safefs.Owner {
	return safefs.Owner{Name: u.Name, UID: u.UID, GID: u.GID, Chown: u.Switch}
}

func toSysUser(u *user.User, sw bool) (SysUser, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return SysUser{}, fmt.Errorf("user %s: bad uid %q", u.Username, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return SysUser{}, fmt.Errorf("user %s: bad gid %q", u.Username, u.Gid)
	}
	return SysUser{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Switch: sw}, nil
}
