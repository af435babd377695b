package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/safefs"
	"github.com/pgherd/pgherd/pkg/supervise"
)

const (
	defaultStopTimeout = 60 * time.Second
	// startTimeout bounds the wait for a new supervisor to report its
	// daemon started (a fork and an exec, however loaded the machine).
	startTimeout = 30 * time.Second
	pollInterval = 15 * time.Millisecond
	// defaultPath is systemd's PATH for services, so that both managers give
	// a program the same one.
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// NewProcess returns the manager for machines without systemd: each service
// runs under a supervisor of its own (pgherd-supervise, in its own session,
// output appended to the service's log file) that restarts it when it dies,
// as the restart policy says, and gives up after a crash loop. In
// <RunDir>/<kind>/ it keeps <instance>.pid (the daemon's PID),
// <instance>.supervisor.pid, <instance>.state (the supervisor's State) and
// <instance>.spec (what the supervisor runs; 0600) and <instance>.supervise.log
// (what the supervisor did). See DESIGN.md.
func NewProcess(cfg Config) Manager {
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = defaultStopTimeout
	}
	if cfg.Policy == (supervise.Policy{}) {
		cfg.Policy = DefaultPolicy
	}
	return &processManager{cfg: cfg}
}

type processManager struct{ cfg Config }

func (m *processManager) Name() string { return "process" }

func (m *processManager) file(s Service, ext string) string {
	return filepath.Join(m.cfg.RunDir, s.Kind, s.Instance+ext)
}

func (m *processManager) pidfile(s Service) string { return m.file(s, ".pid") }

// Install creates the pidfile's directory and the log file's; a log
// directory it creates belongs to the service's user.
func (m *processManager) Install(ctx context.Context, s Service) error {
	if err := s.check(); err != nil {
		return err
	}
	return m.makeDirs(s)
}

func (m *processManager) makeDirs(s Service) error {
	if s.LogFile == "" {
		return fmt.Errorf("%s: no log file given: the process manager needs one", s)
	}
	if m.cfg.RunDir == "" {
		return fmt.Errorf("%s: no run directory configured for pidfiles", s)
	}
	if err := os.MkdirAll(filepath.Dir(m.pidfile(s)), 0o755); err != nil {
		return fmt.Errorf("%s: %w", s, err)
	}
	logDir := filepath.Dir(s.LogFile)
	if isDir(logDir) {
		return nil
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("%s: %w", s, err)
	}
	cred, _, err := credential(s.User, uint32(os.Geteuid()))
	if err != nil {
		return fmt.Errorf("%s: %w", s, err)
	}
	if cred != nil {
		if err := os.Lchown(logDir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// Start launches the service's supervisor, which starts the program, and
// returns once the program runs. A program left running without its
// supervisor (by a supervisor that crashed, or one detached for an
// upgrade) is adopted: supervised again, not started twice.
func (m *processManager) Start(ctx context.Context, s Service) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := m.makeDirs(s); err != nil {
		return err
	}
	unlock, err := m.lock(ctx, s)
	if err != nil {
		return err
	}
	defer unlock()
	if sup := m.supervisorPID(s); sup > 0 {
		st, _ := m.Status(ctx, s)
		if !st.Running {
			return fmt.Errorf("cannot start %s: %w: its supervisor (PID %d) is %s; wait for it, or stop it first", s, ErrAlreadyRunning, sup, st.Supervision)
		}
		return fmt.Errorf("cannot start %s: %w (PID %d, supervisor PID %d); stop it first", s, ErrAlreadyRunning, st.PID, sup)
	}
	adopt := 0
	if pid, _ := m.readPID(s); pid > 0 && supervise.Inspect(pid, s.Exec).Ours {
		adopt = pid
		logging.From(ctx).Warn(fmt.Sprintf("%s runs as PID %d without its supervisor (left by a crashed or older pgherd): supervising it again", s, pid))
	}
	// What a crashed supervisor left: its pidfile, a daemon pidfile naming
	// a process that is gone or not ours (never signalled), a state.
	for _, ext := range []string{".supervisor.pid", ".state"} {
		err := os.Remove(m.file(s, ext))
		switch {
		case err == nil && ext == ".supervisor.pid":
			logging.From(ctx).Warn(fmt.Sprintf("%s: removed %s, left by a supervisor that is gone", s, m.file(s, ext)))
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	cred, home, err := credential(s.User, uint32(os.Geteuid()))
	if err != nil {
		return fmt.Errorf("cannot start %s: %w", s, err)
	}
	if adopt == 0 {
		if err := canExec(s.User, s.Exec[0]); err != nil {
			return fmt.Errorf("cannot start %s: %w", s, err)
		}
	}
	sup, err := m.supervisor()
	if err != nil {
		return fmt.Errorf("cannot start %s: %w", s, err)
	}
	spec := m.spec(s, cred, home)
	if err := supervise.WriteJSON(m.file(s, ".spec"), spec, 0o600); err != nil {
		return fmt.Errorf("cannot start %s: writing %s: %w", s, m.file(s, ".spec"), err)
	}
	logf, err := openLog(s.LogFile, cred)
	if err != nil {
		return fmt.Errorf("cannot start %s: %w", s, err)
	}
	defer logf.Close() // the supervisor has its own descriptor
	// The supervisor's own messages go apart, to a root-owned directory:
	// the daemon's log stays the daemon's.
	suplog, err := os.OpenFile(m.file(s, ".supervise.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("cannot start %s: %w", s, err)
	}
	defer suplog.Close()
	args := []string{sup}
	if adopt > 0 {
		args = append(args, "--adopt", strconv.Itoa(adopt))
	}
	args = append(args, m.supervisorArgs(s)...)
	cmd := &exec.Cmd{
		Path: sup, Args: args, Env: environ(nil, home), Dir: "/", Stdout: logf, Stderr: suplog,
		// Its own session: no signal of pgherd's terminal or process
		// group reaches it, and it outlives the command that started it.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	logging.From(ctx).Debug("starting " + strings.Join(s.Exec, " ") + " under " + sup)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot start %s: %w", s, err)
	}
	// Reap the supervisor if it ends while pgherd still runs (tests,
	// long-lived callers); once pgherd exits it belongs to PID 1.
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	return m.waitStarted(ctx, s, exited)
}

// waitStarted waits until the supervisor reports the program running, or
// that it could not start it.
func (m *processManager) waitStarted(ctx context.Context, s Service, exited <-chan struct{}) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	for gone := false; ; {
		st, _ := supervise.ReadState(m.file(s, ".state"))
		switch {
		case st.State == supervise.Running && st.PID > 0, st.State == supervise.Exited:
			return nil
		case st.State == supervise.Restarting || st.State == supervise.Failed:
			m.stopSupervisor(ctx, s)
			return fmt.Errorf("cannot start %s: %w: it %s; see %s", s, ErrStartFailed, st.LastExit, s.LogFile)
		case gone:
			return fmt.Errorf("cannot start %s: its supervisor exited: %s", s, lastLine(m.file(s, ".supervise.log")))
		}
		select {
		case <-exited:
			gone = true
			continue
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("cannot start %s: its supervisor reported nothing in %s; see %s", s, startTimeout, m.file(s, ".supervise.log"))
		case <-tick.C:
		}
	}
}

// stopSupervisor stops the supervisor (and so the program), best effort:
// for a start that failed.
func (m *processManager) stopSupervisor(ctx context.Context, s Service) {
	if pid := m.supervisorPID(s); pid > 0 {
		_ = m.stop(ctx, s, pid, m.supervisorArgs(s), syscall.SIGTERM)
	}
}

// lastLine is the last line of a log file, for error messages.
func lastLine(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if lines[len(lines)-1] == "" {
		return "no message; see " + path
	}
	return lines[len(lines)-1]
}

// supervisorArgs is how a supervisor's command line ends: what tells it
// apart from any other process, whichever pgherd-supervise binary runs it.
func (m *processManager) supervisorArgs(s Service) []string {
	return []string{"--spec", m.file(s, ".spec")}
}

// supervisorPID is the PID of the service's running supervisor, or 0.
func (m *processManager) supervisorPID(s Service) int {
	pid, _ := supervise.ReadPID(m.file(s, ".supervisor.pid"))
	if pid > 0 && supervise.Inspect(pid, m.supervisorArgs(s)).Ours {
		return pid
	}
	return 0
}

// supervisor is the pgherd-supervise binary to run.
func (m *processManager) supervisor() (string, error) { return supervisorPath(m.cfg.Supervisor) }

// spec is what the supervisor of s runs.
func (m *processManager) spec(s Service, cred *syscall.Credential, home string) *supervise.Spec {
	sp := &supervise.Spec{
		Name: s.String(), Exec: s.Exec, Env: environ(s.Env, home), Dir: "/",
		StopSignal:        int(s.StopSignal),
		PIDFile:           m.pidfile(s),
		SupervisorPIDFile: m.file(s, ".supervisor.pid"),
		StateFile:         m.file(s, ".state"),
		Policy:            m.cfg.Policy,
		Fence:             s.Fence,
	}
	if cred != nil {
		sp.Cred = &supervise.Cred{UID: cred.Uid, GID: cred.Gid, Groups: cred.Groups}
	}
	return sp
}

// Status reports the process named by the pidfile, if it still runs our
// program, and what its supervisor says.
func (m *processManager) Status(ctx context.Context, s Service) (State, error) {
	if err := s.check(); err != nil {
		return State{}, err
	}
	var st State
	sup, err := supervise.ReadState(m.file(s, ".state"))
	if err != nil {
		return State{}, fmt.Errorf("%s: %w", s, err)
	}
	st.Restarts, st.LastExit, st.Fenced = sup.Restarts, sup.LastExit, sup.Fenced
	switch {
	case sup.State == supervise.Failed:
		st.Supervision = fmt.Sprintf("given up after %d tries (%s)", sup.Tries, sup.LastExit)
		st.GaveUp = true
	case m.supervisorPID(s) == 0:
		// "unsupervised" once the daemon is found running, below
	case sup.State == supervise.Restarting:
		st.Supervision = fmt.Sprintf("restarting (try %d of %d: %s)", sup.Tries, m.cfg.Policy.MaxTries, sup.LastExit)
		st.Restarting, st.Active = true, true
	default:
		st.Supervision = "supervised"
		st.Active = true
	}
	pid, err := m.readPID(s)
	if err != nil || pid == 0 {
		return st, err
	}
	if supervise.Inspect(pid, s.Exec).Ours {
		st.Running, st.PID = true, pid
		if st.Supervision == "" {
			st.Supervision = "unsupervised"
		}
	}
	return st, nil
}

func (m *processManager) readPID(s Service) (int, error) {
	pid, err := supervise.ReadPID(m.pidfile(s))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", s, err)
	}
	return pid, nil
}

// Stop stops the supervisor first (so nothing restarts the program), which
// stops the program; a program that runs without a supervisor is signalled
// directly. It returns once both are gone.
func (m *processManager) Stop(ctx context.Context, s Service) error {
	if err := s.check(); err != nil {
		return err
	}
	unlock, err := m.lock(ctx, s)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := m.Status(ctx, s)
	if err != nil {
		return err
	}
	if sup := m.supervisorPID(s); sup > 0 {
		if err := m.stop(ctx, s, sup, m.supervisorArgs(s), syscall.SIGTERM); err != nil {
			if errors.Is(err, ErrStopTimeout) && st.Running {
				return fmt.Errorf("%s (PID %d) still runs %s after %s: %w; see %s, and if it must go now, kill it by hand: kill -KILL %d",
					s, st.PID, m.cfg.StopTimeout, signalName(s.StopSignal), ErrStopTimeout, s.LogFile, st.PID)
			}
			return err
		}
	}
	if st, err = m.Status(ctx, s); err != nil {
		return err
	}
	if st.Running {
		if err := m.stop(ctx, s, st.PID, s.Exec, s.StopSignal); err != nil {
			return err
		}
	}
	for _, ext := range []string{".pid", ".supervisor.pid", ".state", ".spec"} {
		if err := os.Remove(m.file(s, ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// stop sends sig to pid and waits until that process is gone: no longer in
// /proc, a zombie, or its PID taken by a process started later. (While it
// exits, its command line is already empty: it no longer looks like ours,
// but is not gone yet.)
func (m *processManager) stop(ctx context.Context, s Service, pid int, exec []string, sig syscall.Signal) error {
	p := supervise.Inspect(pid, exec)
	logging.From(ctx).Debug(fmt.Sprintf("sending %s to %s (PID %d)", signalName(sig), s, pid))
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("cannot stop %s (PID %d): %w", s, pid, err)
	}
	deadline := time.NewTimer(m.cfg.StopTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for q := p; q.Alive && q.Start == p.Start; q = supervise.Inspect(pid, exec) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopping %s (PID %d): %w", s, pid, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("%s (PID %d) still runs %s after %s: %w; see %s, and if it must go now, kill it by hand: kill -KILL %d",
				s, pid, m.cfg.StopTimeout, signalName(sig), ErrStopTimeout, s.LogFile, pid)
		case <-tick.C:
		}
	}
	return nil
}

// Reload sends SIGHUP.
func (m *processManager) Reload(ctx context.Context, s Service) error {
	if err := s.check(); err != nil {
		return err
	}
	st, err := m.Status(ctx, s)
	if err != nil {
		return err
	}
	if !st.Running {
		return fmt.Errorf("cannot reload %s: %w", s, ErrNotRunning)
	}
	if err := syscall.Kill(st.PID, syscall.SIGHUP); err != nil {
		return fmt.Errorf("cannot reload %s (PID %d): %w", s, st.PID, err)
	}
	return nil
}

// Uninstall removes the pidfile of a stopped service.
func (m *processManager) Uninstall(ctx context.Context, s Service) error {
	if err := s.check(); err != nil {
		return err
	}
	st, unlock, err := m.lockedStatus(ctx, s)
	if err != nil {
		return err
	}
	defer unlock()
	if st.Running || m.supervisorPID(s) > 0 {
		return fmt.Errorf("cannot uninstall %s: %w (PID %d); stop it first", s, ErrStillRunning, st.PID)
	}
	for _, p := range []string{m.pidfile(s), m.file(s, ".supervisor.pid"), m.file(s, ".state"), m.file(s, ".spec"), m.file(s, ".supervise.log"), m.lockfile(s)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// lockedStatus takes the service's lock, then reads its state: what
// Start, Stop and Uninstall decide on cannot change under them.
func (m *processManager) lockedStatus(ctx context.Context, s Service) (State, func(), error) {
	unlock, err := m.lock(ctx, s)
	if err != nil {
		return State{}, nil, err
	}
	st, err := m.Status(ctx, s)
	if err != nil {
		unlock()
		return State{}, nil, err
	}
	return st, unlock, nil
}

func (m *processManager) lockfile(s Service) string { return m.file(s, ".lock") }

// lock serialises Start, Stop and Uninstall of one service between pgherd
// processes: two concurrent starts would otherwise both find it stopped, and
// the loser's pidfile would hide the winner.
func (m *processManager) lock(ctx context.Context, s Service) (unlock func(), err error) {
	if m.cfg.RunDir == "" {
		return nil, fmt.Errorf("%s: no run directory configured for pidfiles", s)
	}
	if err := os.MkdirAll(filepath.Dir(m.lockfile(s)), 0o755); err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	f, err := os.OpenFile(m.lockfile(s), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("%s: cannot lock %s: %w", s, m.lockfile(s), err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("%s: another pgherd holds %s: %w", s, m.lockfile(s), ctx.Err())
		case <-tick.C:
		}
	}
}

// credential returns how a process whose effective uid is me switches to u
// (nil: it stays who it is), and u's home.
func credential(u *User, me uint32) (*syscall.Credential, string, error) {
	if u == nil || u.UID == me {
		home, _ := os.UserHomeDir()
		return nil, home, nil
	}
	if me != 0 {
		return nil, "", fmt.Errorf("cannot run as user %s (uid %d): pgherd runs as uid %d, not root", u.Name, u.UID, me)
	}
	c := &syscall.Credential{Uid: u.UID, Gid: u.GID}
	home := "/"
	if pu, err := user.LookupId(strconv.Itoa(int(u.UID))); err == nil {
		home = pu.HomeDir
		// Keep the user's supplementary groups (e.g. ssl-cert, for Debian's
		// snakeoil key); setgroups would otherwise drop them all.
		if ids, err := pu.GroupIds(); err == nil {
			for _, id := range ids {
				if g, err := strconv.ParseUint(id, 10, 32); err == nil {
					c.Groups = append(c.Groups, uint32(g))
				}
			}
		}
	}
	return c, home, nil
}

// openLog opens the log file for appending, owned by the service's user.
// The log directory belongs to that user, so root opens the file without
// following a link planted there (safefs.OpenAppend) before its chown.
func openLog(path string, cred *syscall.Credential) (*os.File, error) {
	f, err := safefs.OpenAppend(path, 0o640)
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := f.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// environ is the program's whole environment: a minimal PATH, LANG and HOME,
// then env, whose entries win.
func environ(env []string, home string) []string {
	if home == "" {
		home = "/"
	}
	lang := os.Getenv("LANG")
	if lang == "" {
		lang = "C.UTF-8"
	}
	base := []string{"PATH=" + defaultPath, "LANG=" + lang, "HOME=" + home}
	out := make([]string, 0, len(base)+len(env))
	for _, b := range base {
		k, _, _ := strings.Cut(b, "=")
		if !hasKey(env, k) {
			out = append(out, b)
		}
	}
	return append(out, env...)
}

func hasKey(env []string, key string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, key+"=") {
			return true
		}
	}
	return false
}
