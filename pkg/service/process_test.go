package service

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/supervise"
)

// sharedDir returns a fresh directory that other users can traverse (0755),
// removed when the test ends.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgherd-service-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// newTestProcess returns a process manager whose pidfiles and logs live in a
// fresh directory, and a Service for exec with its log file there.
func newTestProcess(t *testing.T, name string, exec ...string) (Manager, Service, string) {
	t.Helper()
	dir := sharedDir(t)
	m := NewProcess(Config{RunDir: filepath.Join(dir, "run"), StopTimeout: 10 * time.Second})
	s := Service{Kind: KindDCS, Instance: name, Exec: exec, LogFile: filepath.Join(dir, "log", name+".log")}
	if err := m.Install(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return m, s, filepath.Join(dir, "run", KindDCS, name+".pid")
}

// killAtEnd makes sure the process the test started (and its group) is gone
// when the test ends, whatever happened.
func killAtEnd(t *testing.T, m Manager, s Service) {
	t.Cleanup(func() {
		if pm, ok := m.(*processManager); ok {
			if pid := pm.supervisorPID(s); pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if st, _ := m.Status(context.Background(), s); st.Running {
			_ = syscall.Kill(-st.PID, syscall.SIGKILL)
			_ = syscall.Kill(st.PID, syscall.SIGKILL)
		}
	})
}

// waitFor polls cond every 10 ms until it holds or d has passed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProcessLifecycle(t *testing.T) {
	ctx := context.Background()
	m, s, pidfile := newTestProcess(t, "sleeper", "/usr/bin/sleep", "300")
	killAtEnd(t, m, s)
	if st, err := m.Status(ctx, s); err != nil || st.Running {
		t.Fatalf("before Start: %+v, %v", st, err)
	}
	if err := m.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	st, err := m.Status(ctx, s)
	if err != nil || !st.Running || st.PID <= 0 {
		t.Fatalf("after Start: %+v, %v", st, err)
	}
	b, err := os.ReadFile(pidfile)
	if err != nil || string(b) != strconv.Itoa(st.PID)+"\n" {
		t.Errorf("pidfile holds %q (%v), want PID %d", b, err, st.PID)
	}
	if fi, _ := os.Stat(pidfile); fi.Mode().Perm() != 0o644 {
		t.Errorf("pidfile mode %v, want 0644", fi.Mode().Perm())
	}
	if sid := procField(t, st.PID, 6); sid != strconv.Itoa(st.PID) {
		t.Errorf("the service is not in a session of its own: session %s, PID %d", sid, st.PID)
	}

	err = m.Start(ctx, s)
	if !errors.Is(err, ErrAlreadyRunning) || !strings.Contains(err.Error(), "PID "+strconv.Itoa(st.PID)) {
		t.Errorf("second Start: %v; want ErrAlreadyRunning naming the PID", err)
	}
	if err := m.Uninstall(ctx, s); !errors.Is(err, ErrStillRunning) {
		t.Errorf("Uninstall while running: %v; want ErrStillRunning", err)
	}

	if err := m.Stop(ctx, s); err != nil {
		t.Fatal(err)
	}
	if supervise.Inspect(st.PID, s.Exec).Alive {
		t.Errorf("PID %d still runs after Stop", st.PID)
	}
	if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pidfile left after Stop: %v", err)
	}
	if err := m.Stop(ctx, s); err != nil {
		t.Errorf("Stop of a stopped service: %v", err)
	}
	if err := m.Reload(ctx, s); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Reload of a stopped service: %v; want ErrNotRunning", err)
	}
	if err := m.Uninstall(ctx, s); err != nil {
		t.Error(err)
	}
}

// procField returns field n (1-based) of /proc/PID/stat.
func procField(t *testing.T, pid, n int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	return fields[n-3]
}

// TestProcessCleanEnvironment: the program sees the Service's environment and
// a minimal PATH/LANG/HOME, nothing of pgherd's (no PGPASSWORD), and reads
// /dev/null.
func TestProcessCleanEnvironment(t *testing.T) {
	t.Setenv("PGPASSWORD", "s3cret")
	t.Setenv("PGCONNECT_TIMEOUT", "1")
	m, s, _ := newTestProcess(t, "env", "/bin/sh", "-c", `readlink /proc/$$/fd/0; exec /usr/bin/env`)
	s.Env = []string{"PATRONI_LOGLEVEL=DEBUG", "HOME=/var/lib/somewhere"}
	killAtEnd(t, m, s)
	if err := m.Start(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	var out string
	waitFor(t, 10*time.Second, "env printed nothing in "+s.LogFile, func() bool {
		b, _ := os.ReadFile(s.LogFile)
		out = string(b)
		return strings.Contains(out, "PATRONI_LOGLEVEL")
	})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != "/dev/null" {
		t.Errorf("stdin is %q, want /dev/null", lines[0])
	}
	env := slices.DeleteFunc(lines[1:], func(l string) bool { return strings.HasPrefix(l, "PWD=") }) // set by sh
	slices.Sort(env)
	want := []string{"HOME=/var/lib/somewhere", "LANG=" + envOr("LANG", "C.UTF-8"), "PATH=" + defaultPath, "PATRONI_LOGLEVEL=DEBUG"}
	if !slices.Equal(env, want) {
		t.Errorf("environment of the service:\n%s\nwant:\n%s", strings.Join(env, "\n"), strings.Join(want, "\n"))
	}
	if fi, _ := os.Stat(s.LogFile); fi.Mode().Perm() != 0o640 {
		t.Errorf("log file mode %v, want 0640", fi.Mode().Perm())
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// TestProcessLogAppends: a second run appends to the log file.
func TestProcessLogAppends(t *testing.T) {
	m, s, _ := newTestProcess(t, "echo", "/bin/echo", "hello")
	for i := 0; i < 2; i++ {
		if err := m.Start(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "echo did not write its line", func() bool {
			b, _ := os.ReadFile(s.LogFile)
			return strings.Count(string(b), "hello\n") == i+1
		})
		// echo is gone (reaped by the manager's goroutine): not running any more.
		waitFor(t, 10*time.Second, "echo still counts as running", func() bool {
			st, _ := m.Status(context.Background(), s)
			return !st.Running
		})
	}
}

func TestProcessStalePidfile(t *testing.T) {
	ctx := context.Background()
	m, s, pidfile := newTestProcess(t, "stale", "/usr/bin/sleep", "300")
	killAtEnd(t, m, s)
	dead := exec.Command("/bin/true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(dead.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, err := m.Status(ctx, s); err != nil || st.Running {
		t.Fatalf("a pidfile naming a dead PID: %+v, %v", st, err)
	}
	if err := m.Start(ctx, s); err != nil {
		t.Fatalf("Start over a stale pidfile: %v", err)
	}
	if st, _ := m.Status(ctx, s); !st.Running || st.PID == dead.Process.Pid {
		t.Errorf("after Start over a stale pidfile: %+v", st)
	}
	if err := m.Stop(ctx, s); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(pidfile, []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Status(ctx, s); err == nil || !strings.Contains(err.Error(), "does not hold a PID") {
		t.Errorf("Status with a garbage pidfile: %v", err)
	}
}

// TestProcessReusedPID: a pidfile naming a live process that runs something
// else (the PID was reused) does not count, and Stop leaves that process alone.
func TestProcessReusedPID(t *testing.T) {
	ctx := context.Background()
	m, s, pidfile := newTestProcess(t, "reused", "/usr/bin/sleep", "300")
	other := exec.Command("/usr/bin/sleep", "301") // same program, other arguments
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	for _, pid := range []int{os.Getpid(), other.Process.Pid} {
		if err := os.WriteFile(pidfile, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatal(err)
		}
		if st, err := m.Status(ctx, s); err != nil || st.Running {
			t.Errorf("pidfile naming unrelated PID %d: %+v, %v", pid, st, err)
		}
		if err := m.Stop(ctx, s); err != nil {
			t.Errorf("Stop with a pidfile naming unrelated PID %d: %v", pid, err)
		}
		if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Stop left the stale pidfile: %v", err)
		}
	}
	if !supervise.Inspect(other.Process.Pid, []string{"/usr/bin/sleep", "301"}).Ours {
		t.Error("Stop signalled an unrelated process")
	}
}

// TestProcessZombie: a process that has exited but is not reaped (PID 1 of a
// container may never reap it) is not running, and Stop returns as soon as
// the stop signal turns it into one.
func TestProcessZombie(t *testing.T) {
	ctx := context.Background()
	m, s, pidfile := newTestProcess(t, "zombie", "/usr/bin/sleep", "300")
	// Started outside the manager and never waited for until the end, so
	// that nobody reaps it.
	c := exec.Command(s.Exec[0], s.Exec[1:]...)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	pid := c.Process.Pid
	waitFor(t, time.Second, "sleep not exec'd", func() bool { return supervise.Inspect(pid, s.Exec).Ours })
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Status(ctx, s); !st.Running || st.PID != pid {
		t.Fatalf("Status = %+v, want running as PID %d", st, pid)
	}
	if err := m.Stop(ctx, s); err != nil { // would time out if a zombie counted as running
		t.Fatal(err)
	}
	if state := procField(t, pid, 3); state != "Z" {
		t.Fatalf("PID %d is in state %s after Stop, want a zombie (Z)", pid, state)
	}
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, err := m.Status(ctx, s); err != nil || st.Running {
		t.Errorf("a zombie counts as running: %+v, %v", st, err)
	}
}

// TestProcessStopTimeout: a program that ignores its stop signal is not
// killed behind the user's back; Stop says how to kill it.
func TestProcessStopTimeout(t *testing.T) {
	ctx := context.Background()
	dir := sharedDir(t)
	m := NewProcess(Config{RunDir: dir, StopTimeout: 300 * time.Millisecond})
	s := Service{Kind: KindPatroni, Instance: "stubborn", LogFile: filepath.Join(dir, "stubborn.log"),
		Exec: []string{"/bin/sh", "-c", "trap '' TERM; sleep 300; :"}}
	killAtEnd(t, m, s)
	if err := m.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	st, _ := m.Status(ctx, s)
	waitChild(t, st.PID) // the shell has set its trap
	err := m.Stop(ctx, s)
	if !errors.Is(err, ErrStopTimeout) || !strings.Contains(err.Error(), "kill -KILL "+strconv.Itoa(st.PID)) {
		t.Fatalf("Stop = %v; want ErrStopTimeout saying how to kill PID %d", err, st.PID)
	}
	if now, _ := m.Status(ctx, s); !now.Running {
		t.Error("the stubborn process was killed, or its pidfile removed, after the timeout")
	}
}

func TestProcessBadInput(t *testing.T) {
	ctx := context.Background()
	m := NewProcess(Config{RunDir: t.TempDir()})
	good := Service{Kind: KindDCS, Instance: "m1", Exec: []string{"/usr/bin/sleep", "1"}, LogFile: filepath.Join(t.TempDir(), "l")}
	for _, c := range []struct {
		edit func(*Service)
		want string
	}{
		{func(s *Service) { s.Kind = "pgbouncer" }, `unknown service kind "pgbouncer"`},
		{func(s *Service) { s.Instance = "../x" }, `invalid service instance name "../x"`},
		{func(s *Service) { s.Instance = "" }, `invalid service instance name ""`},
		{func(s *Service) { s.Exec = []string{"sleep", "1"} }, "must be an absolute path"},
		{func(s *Service) { s.Env = []string{"PGPASSWORD"} }, `invalid environment entry "PGPASSWORD"`},
		{func(s *Service) { s.LogFile = "" }, "no log file given"},
		{func(s *Service) { s.Exec = []string{"/nonexistent/prog"} }, "no such file or directory"},
	} {
		s := good
		c.edit(&s)
		if err := m.Start(ctx, s); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Start(%+v) = %v; want an error containing %q", s, err, c.want)
		}
	}
}

// TestProcessScript: an interpreted program (Patroni is a Python script) runs
// as "interpreter script args"; it is still recognised as ours, and an
// interpreter running another script is not.
func TestProcessScript(t *testing.T) {
	ctx := context.Background()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3 (Patroni's interpreter)")
	}
	dir := sharedDir(t)
	script := filepath.Join(dir, "agent")
	if err := os.WriteFile(script, []byte("#!/usr/bin/python3\nimport time\ntime.sleep(300)\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := NewProcess(Config{RunDir: dir})
	s := Service{Kind: KindPatroni, Instance: "15-pg1", Exec: []string{script, "config.yaml"}, LogFile: filepath.Join(dir, "patroni.log")}
	killAtEnd(t, m, s)
	if err := m.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	st, err := m.Status(ctx, s)
	if err != nil || !st.Running {
		t.Fatalf("Status of a running script: %+v, %v", st, err)
	}
	if p := supervise.Inspect(st.PID, []string{script, "other.yaml"}); p.Ours {
		t.Error("the script with other arguments counts as ours")
	}
	if err := m.Stop(ctx, s); err != nil {
		t.Fatal(err)
	}
}

// TestProcessConcurrentStart: of several pgherd runs starting one service at
// once, exactly one starts it; the others are told it runs.
func TestProcessConcurrentStart(t *testing.T) {
	m, s, _ := newTestProcess(t, "racer", "/usr/bin/sleep", "300")
	killAtEnd(t, m, s)
	errs := make(chan error, 4)
	for i := 0; i < cap(errs); i++ {
		go func() {
			errs <- NewProcess(Config{RunDir: m.(*processManager).cfg.RunDir}).Start(context.Background(), s)
		}()
	}
	started := 0
	for i := 0; i < cap(errs); i++ {
		switch err := <-errs; {
		case err == nil:
			started++
		case !errors.Is(err, ErrAlreadyRunning):
			t.Error(err)
		}
	}
	if started != 1 {
		t.Errorf("%d concurrent Starts succeeded, want 1", started)
	}
	if err := m.Stop(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if err := m.Uninstall(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(filepath.Dir(m.(*processManager).pidfile(s))); len(left) != 0 {
		t.Errorf("Uninstall left %v", left)
	}
}

func TestCredential(t *testing.T) {
	u := &User{Name: "pgherd", UID: 999, GID: 995}
	if _, _, err := credential(u, 1000); err == nil || !strings.Contains(err.Error(), "cannot run as user pgherd (uid 999): pgherd runs as uid 1000, not root") {
		t.Errorf("switching user without root: %v", err)
	}
	if c, _, err := credential(u, 999); err != nil || c != nil {
		t.Errorf("running as the service's own user: %+v, %v; want no switch", c, err)
	}
	if c, _, err := credential(nil, 1000); err != nil || c != nil {
		t.Errorf("no user given: %+v, %v; want no switch", c, err)
	}
	c, _, err := credential(u, 0)
	if err != nil || c == nil || c.Uid != 999 || c.Gid != 995 {
		t.Errorf("root switching to pgherd: %+v, %v", c, err)
	}
}

// waitChild waits until pid has started a child process.
func waitChild(t *testing.T, pid int) {
	t.Helper()
	waitFor(t, 10*time.Second, "no child process started", func() bool {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
		return len(strings.TrimSpace(string(b))) > 0
	})
}
