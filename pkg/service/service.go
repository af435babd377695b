// Package service runs pgherd's long-lived daemons (postgres, Patroni,
// pgherd-dcs) through a Manager: systemd where systemd really runs,
// otherwise a plain background process with a pidfile and a log file.
//
// Both managers give the program the environment the Service lists and
// nothing of pgherd's own: a PGPASSWORD in the caller's environment must never
// reach Patroni (libpq would prefer it over Patroni's pgpass, and every
// pg_basebackup would fail).
package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgherd/pgherd/pkg/names"
	"github.com/pgherd/pgherd/pkg/run"
	"github.com/pgherd/pgherd/pkg/supervise"
)

// Kinds of services; each selects the unit template pgherd-<kind>@.service.
const (
	KindPostgreSQL = "postgresql"
	KindPatroni    = "patroni"
	KindDCS        = "dcs"
)

// Service is one long-running program pgherd supervises.
type Service struct {
	Kind     string   // KindPostgreSQL, KindPatroni or KindDCS: selects unit template pgherd-<kind>@.service
	Instance string   // instance name, e.g. "15-pg1" (systemd %i); names the pidfile and the unit too
	Exec     []string // absolute program path and arguments
	// Env is the whole environment of the program besides a minimal PATH,
	// LANG and HOME: pgherd's own environment is never inherited.
	Env  []string
	User *User // run as this system user when pgherd is root; nil = as the current user
	// LogFile receives the program's stdout and stderr (appended; created
	// 0640 and owned by User). Required by the process manager; systemd
	// sends output to the journal.
	LogFile     string
	StopSignal  syscall.Signal // default SIGTERM; postgres uses SIGINT (fast shutdown)
	Notify      bool           // the program speaks sd_notify: systemd Type=notify
	Description string         // optional; systemd Description=
	// Fence, for a Patroni, is how its supervisor stops the host's
	// PostgreSQL when Patroni dies and is not back holding the leader key
	// in time (supervise.Fence). systemd runs the same fencing from the
	// unit's ExecStopPost=.
	Fence *supervise.Fence
}

// User is a system user a service runs as.
type User struct {
	Name     string
	UID, GID uint32
}

// Reach checks that u can traverse every directory above path, as a
// service running as u must to open it. A nil u is the current user.
func (u *User) Reach(path string) error {
	if u == nil {
		return nil
	}
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		mode := fi.Mode().Perm()
		if ok {
			switch {
			case st.Uid == u.UID && mode&0o100 != 0, st.Gid == u.GID && mode&0o010 != 0, mode&0o001 != 0:
			default:
				return fmt.Errorf("%s (mode %04o, owner uid %d) is not traversable by %s, who must reach %s: chmod o+x %s", d, mode, st.Uid, u.Name, path, d)
			}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// State is what a manager knows of a service right now.
type State struct {
	Running bool
	PID     int // main process; 0 when not running
	// Supervision is what watches the service, in words: "supervised",
	// "restarting (try 2 of 5: killed by SIGKILL)", "given up after 5
	// tries (...)", "unsupervised".
	Supervision string
	GaveUp      bool // the restart policy gave up: the service stays down until started again
	Restarting  bool // the program died and its supervisor will start it again unless the service is stopped
	// Active: the service manager runs the program or will start it
	// again; true even in the moment between the program's death and its
	// supervisor noticing it. Stopping the service is what ends that.
	Active   bool
	Restarts int    // restarts after a death, since it was started
	LastExit string // how it ended last, when it did
	Fenced   string // when and how its PostgreSQL was fenced (Patroni)
}

// Words says in a few words how the service runs: "running, supervised",
// "stopped, given up after 5 tries (exited with status 1), 4 restarts
// (last: exited with status 1)".
func (st State) Words() string {
	s := "stopped"
	if st.Running {
		s = "running"
	}
	if st.Supervision != "" {
		s += ", " + st.Supervision
	}
	if st.Restarts > 0 {
		s += fmt.Sprintf(", %d restarts (last: %s)", st.Restarts, st.LastExit)
	}
	if st.Fenced != "" {
		s += ", fenced " + st.Fenced
	}
	return s
}

// Manager starts, stops and inspects services.
type Manager interface {
	// Name is "process" or "systemd".
	Name() string
	// Install prepares what Start needs (systemd: unit, drop-in, environment
	// file, daemon-reload, enable; process: directories). Idempotent.
	Install(ctx context.Context, s Service) error
	// Start launches the service and returns once it is launched; callers
	// poll readiness themselves. Starting a running service is ErrAlreadyRunning.
	Start(ctx context.Context, s Service) error
	// Stop sends the stop signal and returns once the process is gone, or
	// fails with ErrStopTimeout. Stopping a stopped service is not an error.
	Stop(ctx context.Context, s Service) error
	// Reload sends SIGHUP (systemd: ExecReload). ErrNotRunning when stopped.
	Reload(ctx context.Context, s Service) error
	Status(ctx context.Context, s Service) (State, error)
	// Uninstall removes what Install made. Callers stop the service first:
	// a running service is ErrStillRunning.
	Uninstall(ctx context.Context, s Service) error
}

// Config configures a manager.
type Config struct {
	RunDir   string // process manager: pidfiles go to <RunDir>/<kind>/<instance>.pid
	UnitDir  string // systemd: /etc/systemd/system, or ~/.config/systemd/user in user mode
	UserMode bool   // systemd: systemctl --user
	Runner   run.Runner
	// StopTimeout bounds Stop of the process manager; 0 means 60 s.
	StopTimeout time.Duration
	// Policy is the restart policy of both managers; zero means DefaultPolicy.
	Policy supervise.Policy
	// Supervisor is the pgherd-supervise binary of the process manager;
	// empty means the one beside the running executable.
	Supervisor string
}

// SupervisorName is the supervisor binary, installed beside pgherd.
const SupervisorName = "pgherd-supervise"

// DefaultPolicy is site.yaml's default restart policy.
var DefaultPolicy = supervise.Policy{Delay: 100 * time.Millisecond, MaxDelay: 30 * time.Second, MaxTries: 5, StableAfter: 30 * time.Second}

// Errors callers may test with errors.Is.
var (
	ErrNotRunning     = errors.New("service is not running")
	ErrAlreadyRunning = errors.New("service is already running")
	ErrStillRunning   = errors.New("service is still running")
	ErrStopTimeout    = errors.New("service did not stop in time")
	// ErrStartFailed: the program started but ended at once; its log says why.
	ErrStartFailed = errors.New("service ended as it started")
)

// Detect returns "systemd" when systemd really runs as PID 1 here, else
// "process".
func Detect() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return detect(ctx, "/run/systemd/system", run.Exec{})
}

// NewAuto returns the manager Detect picks, picking it on first use:
// detection may run systemctl, which commands that only read files (such
// as describing an instance) never need.
func NewAuto(cfg Config) Manager { return &auto{cfg: cfg} }

type auto struct {
	cfg  Config
	once sync.Once
	m    Manager
}

func (a *auto) get() Manager {
	a.once.Do(func() {
		a.m = NewProcess(a.cfg)
		if Detect() == "systemd" {
			a.m = NewSystemd(a.cfg)
		}
	})
	return a.m
}

func (a *auto) Name() string                                 { return a.get().Name() }
func (a *auto) Install(ctx context.Context, s Service) error { return a.get().Install(ctx, s) }
func (a *auto) Start(ctx context.Context, s Service) error   { return a.get().Start(ctx, s) }
func (a *auto) Stop(ctx context.Context, s Service) error    { return a.get().Stop(ctx, s) }
func (a *auto) Reload(ctx context.Context, s Service) error  { return a.get().Reload(ctx, s) }
func (a *auto) Status(ctx context.Context, s Service) (State, error) {
	return a.get().Status(ctx, s)
}
func (a *auto) Uninstall(ctx context.Context, s Service) error { return a.get().Uninstall(ctx, s) }

func detect(ctx context.Context, sdDir string, r run.Runner) string {
	if !isDir(sdDir) {
		return "process"
	}
	// is-system-running exits non-zero for "degraded" too: read its words.
	res, _ := r.Run(ctx, run.Cmd{Args: []string{"systemctl", "is-system-running"}})
	switch strings.TrimSpace(res.Stdout) {
	case "", "offline", "unknown":
		return "process"
	}
	return "systemd"
}

var envKeyRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })

// check validates s and fills its defaults.
func (s *Service) check() error {
	switch s.Kind {
	case KindPostgreSQL, KindPatroni, KindDCS:
	default:
		return fmt.Errorf("unknown service kind %q: use %s, %s or %s", s.Kind, KindPostgreSQL, KindPatroni, KindDCS)
	}
	// A unit instance is made of names and the version joined by '-', as
	// in "15-pg1", so it may be longer than one name.
	if len(s.Instance) > 100 || !names.Valid(s.Instance) {
		return fmt.Errorf("invalid service instance name %q: use up to 100 letters, digits, '_' or '-', starting with a letter or digit", s.Instance)
	}
	if len(s.Exec) == 0 || !filepath.IsAbs(s.Exec[0]) {
		return fmt.Errorf("%s: the program must be an absolute path, got %q", s, s.Exec)
	}
	for _, e := range s.Env {
		k, _, ok := strings.Cut(e, "=")
		if !ok || !envKeyRE().MatchString(k) {
			return fmt.Errorf("%s: invalid environment entry %q: use NAME=value", s, k)
		}
	}
	if s.StopSignal == 0 {
		s.StopSignal = syscall.SIGTERM
	}
	return nil
}

// String names the service as messages show it: "patroni 15-pg1".
func (s Service) String() string { return s.Kind + " " + s.Instance }
