package service

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/run"
	"github.com/pgherd/pgherd/pkg/supervise"
)

// userManagerScript starts a systemd user manager where systemd is not PID 1:
// systemd refuses to run unless /run/systemd/system exists, so the script
// runs in a private mount namespace (unshare -m) with a tmpfs of its own
// on /run/systemd, and needs cgroups it may write, delegated to the user.
const userManagerScript = `set -e
mount -t tmpfs tmpfs /run/systemd
mkdir /run/systemd/system
for cg in $CGROUPS; do
	mkdir "$cg"
	chown -R "$U:$G" "$cg"
	echo $$ > "$cg/cgroup.procs"
done
cd /
exec setpriv --reuid="$U" --regid="$G" --init-groups env -i HOME="$H" XDG_RUNTIME_DIR="$R" PATH=/usr/bin:/bin /lib/systemd/systemd --user
`

// startUserManager runs a real systemd user manager for u until the test
// ends, and returns a runner for systemctl --user as u and u's unit directory.
func startUserManager(t *testing.T, u *User) (run.Runner, string) {
	t.Helper()
	for _, p := range []string{"/lib/systemd/systemd", "/usr/bin/unshare", "/usr/bin/setpriv", "/run/systemd"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("cannot run a systemd user manager here: %v", err)
		}
	}
	var cgroups []string
	for _, h := range []string{"/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"} {
		if isDir(h) {
			cgroups = append(cgroups, filepath.Join(h, "pgherd-service-test-"+strconv.Itoa(os.Getpid())))
		}
	}
	if len(cgroups) == 0 {
		cgroups = []string{"/sys/fs/cgroup/pgherd-service-test-" + strconv.Itoa(os.Getpid())}
	}
	dir := sharedDir(t)
	rt, home := filepath.Join(dir, "run"), filepath.Join(dir, "home")
	for _, d := range []string{rt, home} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, int(u.UID), int(u.GID)); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(dir, "systemd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "/bin/sh", "-c", userManagerScript)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CGROUPS=" + strings.Join(cgroups, " "),
		"U=" + strconv.Itoa(int(u.UID)), "G=" + strconv.Itoa(int(u.GID)), "H=" + home, "R=" + rt}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // the manager stops its units, then exits
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Errorf("the systemd user manager (PID %d) ignored SIGTERM for 30 s; killing it", cmd.Process.Pid)
			_ = cmd.Process.Kill()
			<-exited
		}
		for _, cg := range cgroups {
			removeCgroup(t, cg)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !exists(filepath.Join(rt, "systemd", "private")) {
		select {
		case <-exited:
			t.Skipf("cannot run a systemd user manager here:\n%s", readLog(logPath))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the systemd user manager did not open its socket in 30 s:\n%s", readLog(logPath))
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := envRunner{
		exec: run.Exec{Cred: &syscall.Credential{Uid: u.UID, Gid: u.GID}},
		env:  []string{"XDG_RUNTIME_DIR=" + rt, "HOME=" + home, "PATH=/usr/bin:/bin"},
	}
	unitDir := filepath.Join(home, ".config", "systemd", "user")
	if err := os.MkdirAll(unitDir, 0o755); err != nil {
		t.Fatal(err)
	}
	chownTree(t, home, u)
	return r, unitDir
}

// removeCgroup removes a cgroup and the ones systemd made inside it, deepest first.
func removeCgroup(t *testing.T, cg string) {
	var dirs []string
	_ = filepath.WalkDir(cg, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Reverse(dirs)
	for _, d := range dirs {
		if err := syscall.Rmdir(d); err != nil {
			t.Errorf("cannot remove test cgroup %s: %v", d, err)
		}
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// envRunner runs systemctl as the manager's user, in its environment.
type envRunner struct {
	exec run.Exec
	env  []string
}

func (r envRunner) Run(ctx context.Context, c run.Cmd) (run.Result, error) {
	c.Env = r.env
	c.Dir = "/"
	return r.exec.Run(ctx, c)
}

// chownTree hands what Install wrote (as root, in this test) to the user the
// user manager runs as: pgherd in user mode runs as that user, and systemd
// reads a 0600 environment file as that user.
func chownTree(t *testing.T, root string, u *User) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(u.UID), int(u.GID))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSystemdRealPostgres runs PostgreSQL 15 under a real systemd (a user
// manager) through the rendered units: Type=notify readiness, the
// environment file's quoting, ExecReload, KillSignal=SIGINT, status and
// uninstall.
func TestSystemdRealPostgres(t *testing.T) {
	ctx := context.Background()
	u := testUser(t)
	_, data, sock := initdb(t, u)
	runner, unitDir := startUserManager(t, u)
	m := NewSystemd(Config{UnitDir: unitDir, UserMode: true, Runner: runner})

	t.Setenv("PGPASSWORD", "must-not-leak")
	port := strconv.Itoa(freePort(t))
	tricky := `a "quoted" $HOME ${X} ` + "`tick`" + ` back\slash 100% end`
	s := Service{
		Kind: KindPostgreSQL, Instance: "15-sd", Notify: true, StopSignal: syscall.SIGINT,
		Exec: []string{pgBin + "/postgres", "-D", data, "-p", port, "-k", sock, "-c", "listen_addresses=",
			"-c", "logging_collector=on", "-c", "log_directory=" + sock, "-c", "log_filename=pg.log",
			"-c", "cluster_name=100% $HOME"},
		Env: []string{"PGHERD_TRICKY=" + tricky},
	}
	if err := m.Install(ctx, s); err != nil {
		t.Fatal(err)
	}
	chownTree(t, unitDir, u)
	t.Cleanup(func() { _ = m.Stop(ctx, s) })
	if err := m.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	// Type=notify: systemctl start returns once postgres said READY=1, i.e.
	// once it accepts connections.
	if out, err := exec.Command(pgBin+"/pg_isready", "-h", sock, "-p", port).CombinedOutput(); err != nil {
		t.Errorf("not ready when Start returned: %v %s", err, out)
	}
	st, err := m.Status(ctx, s)
	if err != nil || !st.Running {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	pm, _ := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if first, _, _ := strings.Cut(string(pm), "\n"); first != strconv.Itoa(st.PID) {
		t.Errorf("MainPID %d is not the postmaster (postmaster.pid says %s)", st.PID, first)
	}
	env, err := os.ReadFile("/proc/" + strconv.Itoa(st.PID) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	vars := strings.Split(string(env), "\x00")
	if !slices.Contains(vars, "PGHERD_TRICKY="+tricky) {
		t.Errorf("the environment file did not round-trip:\n%q", vars)
	}
	if slices.ContainsFunc(vars, func(v string) bool { return strings.HasPrefix(v, "PGPASSWORD=") }) {
		t.Error("PGPASSWORD reached the service")
	}
	out, err := exec.Command(pgBin+"/psql", "-h", sock, "-p", port, "-U", "postgres", "-Atc", "show cluster_name").Output()
	if err != nil || strings.TrimSpace(string(out)) != "100% $HOME" {
		t.Errorf("ExecStart quoting: cluster_name = %q (%v), want %q", out, err, "100% $HOME")
	}

	logPath := filepath.Join(sock, "pg.log")
	if err := m.Reload(ctx, s); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "no reload in "+logPath, func() bool { return logHas(logPath, "received SIGHUP") })
	if err := m.Start(ctx, s); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second Start: %v, want ErrAlreadyRunning", err)
	}

	if err := m.Stop(ctx, s); err != nil {
		t.Fatal(err)
	}
	if !logHas(logPath, "received fast shutdown request") {
		t.Errorf("KillSignal=SIGINT did not ask for a fast shutdown:\n%s", readLog(logPath))
	}
	if st, err := m.Status(ctx, s); err != nil || st.Running {
		t.Errorf("after Stop: %+v, %v", st, err)
	}
	if err := m.Uninstall(ctx, s); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(unitDir, "pgherd-*")); len(left) != 0 {
		t.Errorf("Uninstall left %v", left)
	}
}

// TestSystemdRealStartFailure: a program that cannot be executed fails
// Start (Type=exec) with systemctl's message and a pointer to the journal.
func TestSystemdRealStartFailure(t *testing.T) {
	ctx := context.Background()
	u := testUser(t)
	runner, unitDir := startUserManager(t, u)
	m := NewSystemd(Config{UnitDir: unitDir, UserMode: true, Runner: runner})
	s := Service{Kind: KindDCS, Instance: "m1", Exec: []string{"/nonexistent/pgherd", "dcs", "serve"}}
	if err := m.Install(ctx, s); err != nil {
		t.Fatal(err)
	}
	chownTree(t, unitDir, u)
	err := m.Start(ctx, s)
	if err == nil || !strings.Contains(err.Error(), "journalctl --user -u pgherd-dcs@m1.service") {
		t.Fatalf("Start of a missing program: %v", err)
	}
	if err := m.Uninstall(ctx, s); err != nil {
		t.Fatal(err)
	}
}

// TestSystemdRealRestartAndFence runs the rendered units under a real
// systemd: a postmaster killed with SIGKILL is restarted (Restart=on-failure,
// the policy the process manager follows too), and when a Patroni unit's
// main process is killed, its ExecStopPost= (pgherd-supervise fence) stops
// the primary that KillMode=process left running, with a fast shutdown.
func TestSystemdRealRestartAndFence(t *testing.T) {
	ctx := context.Background()
	u := testUser(t)
	dir, data, sock := initdb(t, u)
	runner, unitDir := startUserManager(t, u)
	// The supervisor where the user manager's account can run it.
	built, err := supervisorPath("")
	if err != nil {
		t.Fatal(err)
	}
	sup := filepath.Join(dir, SupervisorName)
	if b, err := os.ReadFile(built); err != nil || os.WriteFile(sup, b, 0o755) != nil {
		t.Fatalf("copying the supervisor: %v", err)
	}
	m := NewSystemd(Config{UnitDir: unitDir, UserMode: true, Runner: runner, Supervisor: sup,
		Policy: fastPolicy})
	port := strconv.Itoa(freePort(t))
	logDir := sock
	postgres := func(logName string) []string {
		return []string{pgBin + "/postgres", "-D", data, "-p", port, "-k", sock, "-c", "listen_addresses=",
			"-c", "logging_collector=on", "-c", "log_directory=" + logDir, "-c", "log_filename=" + logName}
	}
	pg := Service{Kind: KindPostgreSQL, Instance: "15-rf", Notify: true, StopSignal: syscall.SIGINT, Exec: postgres("plain.log")}
	if err := m.Install(ctx, pg); err != nil {
		t.Fatal(err)
	}
	chownTree(t, unitDir, u)
	t.Cleanup(func() { _ = m.Stop(ctx, pg) })
	if err := m.Start(ctx, pg); err != nil {
		t.Fatal(err)
	}
	st, _ := m.Status(ctx, pg)
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "systemd did not restart the killed postmaster", func() bool {
		now, _ := m.Status(ctx, pg)
		return now.Running && now.PID != st.PID && now.Restarts >= 1
	})
	if err := m.Stop(ctx, pg); err != nil {
		t.Fatal(err)
	}

	// A stand-in for Patroni: a shell that runs the postmaster as its child.
	patroni := Service{Kind: KindPatroni, Instance: "15-rf",
		Exec:  append([]string{"/bin/sh", "-c", `"$@" & wait`, "sh"}, postgres("patroni.log")...),
		Fence: &supervise.Fence{DataDir: data, PgCtl: pgBin + "/pg_ctl", TTL: 30 * time.Second, LoopWait: 10 * time.Second}}
	if err := m.Install(ctx, patroni); err != nil {
		t.Fatal(err)
	}
	chownTree(t, unitDir, u)
	t.Cleanup(func() { _ = m.Stop(ctx, patroni) })
	if err := m.Start(ctx, patroni); err != nil {
		t.Fatal(err)
	}
	var first int
	waitFor(t, 30*time.Second, "the stand-in's postmaster did not start", func() bool {
		first, _ = supervise.Primary(data)
		return first > 0
	})
	st, _ = m.Status(ctx, patroni)
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil { // Patroni dies; KillMode=process spares the postmaster
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the primary outlived its Patroni", func() bool { return !supervise.Inspect(first, nil).Alive })
	if log := filepath.Join(logDir, "patroni.log"); !logHas(log, "received fast shutdown request") {
		t.Errorf("the postmaster was not fenced with a fast shutdown:\n%s", readLog(log))
	}
}
