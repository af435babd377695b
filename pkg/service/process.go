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
)

const (
	defaultStopTimeout = 60 * time.Second
	pollInterval       = 15 * time.Millisecond
	// defaultPath is systemd's PATH for services, so that both managers give
	// a program the same one.
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// NewProcess returns the manager for machines without systemd: each service
// is a detached background process (its own session, stdin from /dev/null,
// output appended to its log file) whose PID is kept in
// <RunDir>/<kind>/<instance>.pid. Nothing restarts a process that dies.
func NewProcess(cfg Config) Manager {
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = defaultStopTimeout
	}
	return &processManager{cfg: cfg}
}

type processManager struct{ cfg Config }

func (m *processManager) Name() string { return "process" }

func (m *processManager) pidfile(s Service) string {
	return filepath.Join(m.cfg.RunDir, s.Kind, s.Instance+".pid")
}

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

// Start launches the program and records its PID.
func (m *processManager) Start(ctx context.Context, s Service) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := m.makeDirs(s); err != nil {
		return err
	}
	st, unlock, err := m.lockedStatus(ctx, s)
	if err != nil {
		return err
	}
	defer unlock()
	if st.Running {
		return fmt.Errorf("cannot start %s: %w (PID %d); stop it first", s, ErrAlreadyRunning, st.PID)
	}
	cred, home, err := credential(s.User, uint32(os.Geteuid()))
	if err != nil {
		return fmt.Errorf("cannot start %s: %w", s, err)
	}
	logf, err := openLog(s.LogFile, cred)
	if err != nil {
		return fmt.Errorf("cannot start %s: %w", s, err)
	}
	defer logf.Close() // the child has its own descriptor

	cmd := &exec.Cmd{
		Path:   s.Exec[0],
		Args:   s.Exec,
		Env:    environ(s.Env, home),
		Dir:    "/",
		Stdout: logf,
		Stderr: logf,
		SysProcAttr: &syscall.SysProcAttr{
			Setsid:     true, // no signal of pgherd's terminal or process group reaches it
			Credential: cred,
		},
	}
	logging.From(ctx).Debug("starting " + strings.Join(s.Exec, " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot start %s: %w", s, err)
	}
	// Reap the child if it ends while pgherd still runs (tests, long-lived
	// callers); once pgherd exits it belongs to PID 1.
	go func() { _ = cmd.Wait() }()
	waitExec(cmd.Process.Pid, s.Exec)
	if err := writeFileAtomic(m.pidfile(s), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Signal(s.StopSignal)
		return fmt.Errorf("%s started as PID %d but its pidfile could not be written, so it was sent %s: %w",
			s, cmd.Process.Pid, signalName(s.StopSignal), err)
	}
	return nil
}

// waitExec waits, briefly, until the kernel has finished loading the new
// program into pid: exec resumes the parent before the child's command line
// is set, and until then Status would not recognise the service as ours.
func waitExec(pid int, exec []string) {
	for i := 0; i < 100; i++ {
		if p := inspect(pid, exec); p.ours || !p.alive {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// Status reports the process named by the pidfile, if it still runs our program.
func (m *processManager) Status(ctx context.Context, s Service) (State, error) {
	if err := s.check(); err != nil {
		return State{}, err
	}
	pid, err := m.readPID(s)
	if err != nil || pid == 0 {
		return State{}, err
	}
	if !inspect(pid, s.Exec).ours {
		return State{}, nil
	}
	return State{Running: true, PID: pid}, nil
}

func (m *processManager) readPID(s Service) (int, error) {
	b, err := os.ReadFile(m.pidfile(s))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", s, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s: pidfile %s does not hold a PID: remove it if the program is not running", s, m.pidfile(s))
	}
	return pid, nil
}

// Stop signals the process and waits, polling, until it is gone.
func (m *processManager) Stop(ctx context.Context, s Service) error {
	if err := s.check(); err != nil {
		return err
	}
	st, unlock, err := m.lockedStatus(ctx, s)
	if err != nil {
		return err
	}
	defer unlock()
	if st.Running {
		if err := m.stop(ctx, s, st.PID); err != nil {
			return err
		}
	}
	if err := os.Remove(m.pidfile(s)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w", s, err)
	}
	return nil
}

// stop signals pid and waits until that process is gone: no longer in /proc,
// a zombie, or its PID taken by a process started later. (While it exits,
// its command line is already empty: it no longer looks like ours, but is
// not gone yet.)
func (m *processManager) stop(ctx context.Context, s Service, pid int) error {
	p := inspect(pid, s.Exec)
	logging.From(ctx).Debug(fmt.Sprintf("sending %s to %s (PID %d)", signalName(s.StopSignal), s, pid))
	if err := syscall.Kill(pid, s.StopSignal); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("cannot stop %s (PID %d): %w", s, pid, err)
	}
	deadline := time.NewTimer(m.cfg.StopTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for q := p; q.alive && q.start == p.start; q = inspect(pid, s.Exec) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopping %s (PID %d): %w", s, pid, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("%s (PID %d) still runs %s after %s: %w; see %s, and if it must go now, kill it by hand: kill -KILL %d",
				s, pid, m.cfg.StopTimeout, signalName(s.StopSignal), ErrStopTimeout, s.LogFile, pid)
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
	if st.Running {
		return fmt.Errorf("cannot uninstall %s: %w (PID %d); stop it first", s, ErrStillRunning, st.PID)
	}
	for _, p := range []string{m.pidfile(s), m.lockfile(s)} {
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

func (m *processManager) lockfile(s Service) string {
	return filepath.Join(m.cfg.RunDir, s.Kind, s.Instance+".lock")
}

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
