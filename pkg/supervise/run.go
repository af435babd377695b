package supervise

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// timingsRefresh is how often a Patroni's supervisor rereads the cluster's
// timings while Patroni runs.
const timingsRefresh = 10 * time.Second

// ErrGaveUp is Run's error when the daemon died Policy.MaxTries times in a row.
var ErrGaveUp = errors.New("gave up")

type supervisor struct {
	spec *Spec
	log  *log.Logger
	st   State

	child      int       // the daemon's PID; 0 while it is down
	adopted    bool      // child is not our child: watched through a pidfd
	childSince time.Time // when child started (or was adopted)
	adoptExit  chan struct{}

	restart *time.Timer // the next start, while the daemon is down
	fenceAt time.Time   // when an armed fence fires; zero: not armed
	fence   *time.Timer
}

// Run supervises spec's daemon. It returns nil once told to stop (SIGTERM or
// SIGINT: it stops the daemon with its stop signal, waits for it to exit and
// removes its pidfiles and state) or to detach (SIGUSR2: it exits and leaves
// the daemon running, for a newer supervisor to adopt), and ErrGaveUp after
// a crash loop. adopt, when > 0, is the PID of the daemon already running
// (left by a supervisor that crashed or detached): it is watched, not started.
//
// It is a child subreaper: whatever the daemon leaves behind (a postmaster's
// backends, a Patroni's postmaster) is reparented to it and reaped, not left
// to a PID 1 that may reap nothing.
func Run(spec *Spec, adopt int, logw io.Writer) error {
	s := &supervisor{spec: spec, log: log.New(logw, "pgherd-supervise: "+spec.Name+": ", log.LstdFlags|log.Lmsgprefix)}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("cannot become a child subreaper: %w", err)
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR2, syscall.SIGCHLD)
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	if err := WritePID(spec.SupervisorPIDFile, os.Getpid()); err != nil {
		return fmt.Errorf("cannot write the supervisor's pidfile: %w", err)
	}
	s.restart = stoppedTimer()
	s.fence = stoppedTimer()
	var refresh <-chan time.Time // nil: never
	if spec.Fence != nil && spec.Fence.RestURL != "" {
		t := time.NewTicker(timingsRefresh)
		defer t.Stop()
		refresh = t.C
	}
	if p := Inspect(adopt, spec.Exec); adopt > 0 && p.Ours {
		s.log.Printf("supervising PID %d, already running", adopt)
		if err := s.watch(adopt); err != nil {
			return err
		}
	} else {
		s.start()
	}
	for {
		select {
		case sig := <-sigs:
			switch sig {
			case syscall.SIGCHLD:
				s.reap(false)
			case syscall.SIGUSR2:
				s.log.Printf("detaching: PID %d keeps running, unsupervised until a supervisor adopts it", s.child)
				_ = os.Remove(spec.SupervisorPIDFile)
				return nil
			default:
				return s.stop(sigs)
			}
		case <-s.adoptExit:
			s.died("exited (status unknown: not a child of this supervisor)")
		case <-s.restart.C:
			s.start()
		case <-s.fence.C:
			s.fenceCheck()
		case <-refresh:
			if s.child > 0 {
				s.refreshTimings()
			}
		}
		switch s.st.State {
		case Failed:
			return ErrGaveUp
		case Exited:
			return nil
		}
	}
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// start starts the daemon; a program that cannot be started counts as a
// daemon that died at once.
func (s *supervisor) start() {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		s.died("cannot open " + os.DevNull + ": " + err.Error())
		return
	}
	defer devnull.Close()
	attr := &os.ProcAttr{Dir: s.spec.Dir, Env: s.spec.Env, Files: []*os.File{devnull, os.Stdout, os.Stdout},
		// A session of its own, as a daemon started by systemd has.
		Sys: &syscall.SysProcAttr{Setsid: true}}
	if c := s.spec.Cred; c != nil {
		attr.Sys.Credential = &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: c.Groups}
	}
	s.childSince = time.Now()
	p, err := os.StartProcess(s.spec.Exec[0], s.spec.Exec, attr)
	if err != nil {
		s.died("could not be started: " + err.Error())
		return
	}
	s.child, s.adopted = p.Pid, false
	p.Release()
	// exec resumes the parent before the child's command line is set; the
	// pidfile is written once Inspect recognises the program.
	for i := 0; i < 200 && !Inspect(s.child, s.spec.Exec).Ours && Inspect(s.child, nil).Alive; i++ {
		time.Sleep(time.Millisecond)
	}
	if s.st.Restarts > 0 || s.st.Tries > 0 {
		s.log.Printf("started again as PID %d (restart %d)", s.child, s.st.Restarts)
	}
	s.running()
}

// watch supervises pid, a daemon that is not our child.
func (s *supervisor) watch(pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("cannot watch PID %d: %w", pid, err)
	}
	s.child, s.adopted, s.childSince = pid, true, time.Now()
	ch := make(chan struct{})
	s.adoptExit = ch
	go func() {
		defer unix.Close(fd)
		for {
			_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		close(ch)
	}()
	s.running()
	return nil
}

func (s *supervisor) running() {
	s.st.State, s.st.PID, s.st.Next = Running, s.child, time.Time{}
	if err := WritePID(s.spec.PIDFile, s.child); err != nil {
		s.log.Printf("cannot write pidfile: %v", err)
	}
	s.save()
}

func (s *supervisor) save() {
	if err := WriteJSON(s.spec.StateFile, s.st, 0o644); err != nil {
		s.log.Printf("cannot write state file: %v", err)
	}
}

// reap collects every exited child: the daemon, and anything reparented to
// this subreaper. While stopping, the daemon's end is only noted.
func (s *supervisor) reap(stopping bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		if pid != s.child || s.adopted {
			continue
		}
		switch {
		case stopping:
			s.child = 0
		case clean(ws):
			s.exited(describe(ws))
		default:
			s.died(describe(ws))
		}
	}
}

// clean tells an exit that is no failure, as systemd's Restart=on-failure
// does: status 0, or the end on SIGTERM, SIGINT, SIGHUP or SIGPIPE.
func clean(ws unix.WaitStatus) bool {
	if ws.Signaled() {
		switch ws.Signal() {
		case unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGPIPE:
			return true
		}
		return false
	}
	return ws.ExitStatus() == 0
}

// exited handles a daemon that ended cleanly: it stopped on its own (or
// was stopped behind pgherd's back) and is not restarted, as under
// systemd's Restart=on-failure; its PostgreSQL is still fenced if needed.
func (s *supervisor) exited(how string) {
	s.child = 0
	_ = os.Remove(s.spec.PIDFile)
	s.st.State, s.st.PID, s.st.LastExit = Exited, 0, how
	s.log.Printf("%s: not restarted (it ended cleanly)", how)
	s.armFence(time.Now())
	if !s.fenceAt.IsZero() {
		s.fenceNow("Patroni ended and is not restarted")
	}
	// The pidfile goes first: once the state says so, a new start may begin.
	_ = os.Remove(s.spec.SupervisorPIDFile)
	s.save()
}

func describe(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return fmt.Sprintf("exited with status %d", ws.ExitStatus())
}

// died handles the end of the daemon: count the try, arm the fence, and
// either schedule the next start or give up.
func (s *supervisor) died(how string) {
	now := time.Now()
	if s.child > 0 && now.Sub(s.childSince) >= s.spec.Policy.StableAfter {
		s.st.Tries = 0
	}
	s.child, s.adopted, s.adoptExit = 0, false, nil
	_ = os.Remove(s.spec.PIDFile)
	s.st.Tries++
	s.st.LastExit = how
	s.log.Printf("%s (try %d of %d)", how, s.st.Tries, s.spec.Policy.MaxTries)
	s.armFence(now)
	if s.st.Tries >= s.spec.Policy.MaxTries {
		s.st.State, s.st.PID, s.st.Next = Failed, 0, time.Time{}
		s.log.Printf("gave up after %d tries in a row; start it again once the cause is fixed", s.st.Tries)
		if !s.fenceAt.IsZero() {
			s.fenceNow("Patroni was given up")
		}
		_ = os.Remove(s.spec.SupervisorPIDFile)
		s.save()
		return
	}
	d := s.spec.Policy.Delay << (s.st.Tries - 1)
	if d > s.spec.Policy.MaxDelay || d <= 0 {
		d = s.spec.Policy.MaxDelay
	}
	s.st.State, s.st.PID, s.st.Next = Restarting, 0, now.Add(d)
	s.st.Restarts++
	s.restart.Reset(d)
	s.save()
}

// stop stops the daemon and waits until it has exited, then removes the
// pidfiles and the state file.
func (s *supervisor) stop(sigs chan os.Signal) error {
	s.restart.Stop()
	s.fence.Stop()
	if s.child > 0 {
		s.log.Printf("stopping PID %d with %s", s.child, unix.SignalName(syscall.Signal(s.spec.StopSignal)))
		if err := unix.Kill(s.child, syscall.Signal(s.spec.StopSignal)); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("cannot stop PID %d: %w", s.child, err)
		}
		for s.child > 0 {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGCHLD {
					s.reap(true)
				}
			case <-s.adoptExit:
				s.child = 0
			}
		}
	}
	for _, p := range []string{s.spec.PIDFile, s.spec.StateFile, s.spec.SupervisorPIDFile} {
		_ = os.Remove(p)
	}
	return nil
}
