package service

import (
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/run"
	"github.com/pgherd/pgherd/pkg/supervise"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// fakeSystemctl stands in for systemctl, which cannot run without systemd:
// it records every command and answers "show" with show.
type fakeSystemctl struct {
	calls  []string
	show   string
	failOn string // a verb that fails, e.g. "enable"
}

func (f *fakeSystemctl) Run(_ context.Context, c run.Cmd) (run.Result, error) {
	f.calls = append(f.calls, strings.Join(c.Args, " "))
	if f.failOn != "" && slices.Contains(c.Args, f.failOn) {
		return run.Result{}, &run.Error{Args: c.Args, ExitCode: 1, Stderr: "Failed to " + f.failOn}
	}
	if slices.Contains(c.Args, "show") {
		return run.Result{Stdout: f.show}, nil
	}
	return run.Result{}, nil
}

// unitCases are services as pgherd's callers build them; pgherd is the path
// of the pgherd binary in the dcs unit.
// unitCases are a unit of each kind: PostgreSQL and Patroni run as u, a
// DCS member as dcs (its own account).
func unitCases(pgherd string, u, dcs *User) []Service {
	return []Service{
		{
			Kind: KindPostgreSQL, Instance: "15-pg1", User: u, Notify: true, StopSignal: syscall.SIGINT,
			Exec: []string{"/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/pgherd/15/pg1/data",
				"-c", `cluster_name=pg1 "100%" $HOME\x`},
			Env: []string{"PGSYSCONFDIR=/etc/pgherd/15/pg1"},
		},
		{
			Kind: KindPatroni, Instance: "15-pg1", User: u, Description: "Patroni of 15/pg1, 100% HA",
			Exec: []string{"/usr/bin/patroni", "/etc/pgherd/patroni/15-pg1.yaml"},
			Env:  []string{"PATRONI_LOGLEVEL=INFO", "PGHERD_NOTE=a \"quoted\" `tick` $value \\ end"},
			Fence: &supervise.Fence{DataDir: "/var/lib/pgherd/15/pg1/data", PgCtl: "/usr/lib/postgresql/15/bin/pg_ctl",
				TTL: 30 * time.Second, LoopWait: 10 * time.Second},
		},
		{
			Kind: KindDCS, Instance: "m1", User: dcs,
			Exec: []string{pgherd, "dcs", "serve", "--config", "/etc/pgherd/dcs/m1.yaml"},
		},
	}
}

// installAll installs cases into a fresh unit directory and returns it.
func installAll(t *testing.T, userMode bool, cases []Service) (string, *fakeSystemctl) {
	t.Helper()
	dir := t.TempDir()
	f := &fakeSystemctl{show: "ActiveState=inactive\nMainPID=0\n"}
	m := NewSystemd(Config{UnitDir: dir, UserMode: userMode, Runner: f})
	for _, s := range cases {
		if err := m.Install(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	return dir, f
}

func TestSystemdUnitsGolden(t *testing.T) {
	pgherd := &User{Name: "pgherd", UID: 999, GID: 995}
	dcs := &User{Name: "pgherd-dcs", UID: 998, GID: 994}
	for _, mode := range []struct {
		name      string
		userMode  bool
		user, dcs *User
	}{{"system", false, pgherd, dcs}, {"user", true, nil, nil}} {
		t.Run(mode.name, func(t *testing.T) {
			dir, _ := installAll(t, mode.userMode, unitCases("/usr/bin/pgherd", mode.user, mode.dcs))
			golden := filepath.Join("testdata", "units", mode.name)
			got := readTree(t, dir, "@UNITDIR@")
			sup, _ := supervisorPath("")
			for name, content := range got {
				got[name] = strings.ReplaceAll(content, sup, "@SUPERVISOR@")
			}
			if *update {
				os.RemoveAll(golden)
				for name, content := range got {
					p := filepath.Join(golden, name)
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			want := readTree(t, golden, "")
			if len(want) != len(got) {
				t.Errorf("rendered files %v, golden files %v", keys(got), keys(want))
			}
			for name, w := range want {
				if got[name] != w {
					t.Errorf("%s differs from its golden file (rerun with -update to accept):\n--- got\n%s\n--- want\n%s", name, got[name], w)
				}
			}
		})
	}
}

func readTree(t *testing.T, root, placeholder string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		if placeholder != "" {
			b = []byte(strings.ReplaceAll(string(b), root, placeholder))
		}
		files[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func keys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// TestSystemdAnalyzeVerify runs systemd's own checker on the rendered units,
// with ExecStart pointing at real programs, in system and user mode.
func TestSystemdAnalyzeVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd)")
	}
	for _, bin := range []string{"/usr/lib/postgresql/15/bin/postgres", "/usr/bin/patroni"} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("%s is not installed", bin)
		}
	}
	self, err := os.Executable() // a real binary standing in for pgherd
	if err != nil {
		t.Fatal(err)
	}
	// An ordinary system user: systemd-analyze rightly complains about "nobody".
	sysuser := &User{Name: "pgherd", UID: 999, GID: 995}
	dcsuser := &User{Name: "pgherd-dcs", UID: 998, GID: 994}
	for _, mode := range []struct {
		name      string
		userMode  bool
		user, dcs *User
	}{{"system", false, sysuser, dcsuser}, {"user", true, nil, nil}} {
		t.Run(mode.name, func(t *testing.T) {
			cases := unitCases(self, mode.user, mode.dcs)
			dir, _ := installAll(t, mode.userMode, cases)
			args := []string{"verify"}
			if mode.userMode {
				args = []string{"--user", "verify"}
			}
			for _, s := range cases {
				args = append(args, filepath.Join(dir, unitName(s)))
			}
			cmd := exec.Command("systemd-analyze", args...)
			cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir(), "SYSTEMD_PAGER=")
			out, err := cmd.CombinedOutput()
			var complaints []string
			for _, line := range strings.Split(string(out), "\n") {
				if strings.Contains(line, "pgherd") || strings.Contains(line, dir) {
					complaints = append(complaints, line)
				}
			}
			if err != nil || len(complaints) > 0 {
				t.Errorf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}

// TestSystemdVerifyCatchesBadUnit makes sure the verify test can fail: a
// program that does not exist is reported.
func TestSystemdVerifyCatchesBadUnit(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd)")
	}
	s := Service{Kind: KindDCS, Instance: "bad", Exec: []string{"/nonexistent/pgherd", "dcs", "serve"}}
	dir, _ := installAll(t, false, []Service{s})
	out, err := exec.Command("systemd-analyze", "verify", filepath.Join(dir, unitName(s))).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "/nonexistent/pgherd") {
		t.Fatalf("verify accepted a unit whose program is missing: %v\n%s", err, out)
	}
}

func TestSystemdManagerCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f := &fakeSystemctl{show: "ActiveState=inactive\nMainPID=0\n"}
	m := NewSystemd(Config{UnitDir: dir, UserMode: true, Runner: f})
	pg1, pg2 := unitCases("/usr/bin/pgherd", nil, nil)[0], unitCases("/usr/bin/pgherd", nil, nil)[0]
	pg2.Instance = "15-pg2"
	for _, s := range []Service{pg1, pg2} {
		if err := m.Install(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, unitName(pg1)+".d", "environment")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("environment file: %v, mode %v; want 0600", err, fi.Mode())
	}
	if err := m.Start(ctx, pg1); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx, pg1); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Reload of a stopped unit: %v, want ErrNotRunning", err)
	}

	f.show = "ActiveState=active\nMainPID=4242\n"
	st, err := m.Status(ctx, pg1)
	if err != nil || st != (State{Running: true, PID: 4242, Supervision: "supervised by systemd", Active: true}) {
		t.Errorf("Status = %+v, %v; want running with PID 4242", st, err)
	}
	if err := m.Start(ctx, pg1); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("Start of a running unit: %v, want ErrAlreadyRunning", err)
	}
	if err := m.Uninstall(ctx, pg1); !errors.Is(err, ErrStillRunning) {
		t.Errorf("Uninstall of a running unit: %v, want ErrStillRunning", err)
	}
	if err := m.Reload(ctx, pg1); err != nil {
		t.Error(err)
	}
	if err := m.Stop(ctx, pg1); err != nil {
		t.Fatal(err)
	}

	f.show = "ActiveState=activating\nSubState=auto-restart\nMainPID=0\nNRestarts=2\nResult=signal\n" // waiting for an automatic restart
	if st, _ := m.Status(ctx, pg1); st.Running || !st.Restarting || !st.Active || st.Restarts != 2 || st.Supervision != "restarting (systemd: signal)" {
		t.Errorf("a unit waiting to be restarted: %+v", st)
	}
	f.show = "ActiveState=failed\nSubState=failed\nMainPID=0\nNRestarts=5\nResult=start-limit-hit\n"
	if st, _ := m.Status(ctx, pg1); st.Running || st.Restarting || st.Active || !st.GaveUp || st.Supervision != "given up by systemd (start-limit-hit)" {
		t.Errorf("a unit whose start limit was hit: %+v", st)
	}
	if err := m.Uninstall(ctx, pg1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, templateName(KindPostgreSQL))); err != nil {
		t.Errorf("the template was removed while 15-pg2 still uses it: %v", err)
	}
	if err := m.Uninstall(ctx, pg2); err != nil {
		t.Fatal(err)
	}
	if left := readTree(t, dir, ""); len(left) != 0 {
		t.Errorf("Uninstall left %v", keys(left))
	}

	u := "systemctl --user "
	const show = "-p ActiveState -p MainPID -p SubState -p NRestarts -p Result"
	want := []string{
		u + "daemon-reload", u + "enable pgherd-postgresql@15-pg1.service",
		u + "daemon-reload", u + "enable pgherd-postgresql@15-pg2.service",
		u + "show " + show + " pgherd-postgresql@15-pg1.service", u + "start pgherd-postgresql@15-pg1.service",
		u + "show " + show + " pgherd-postgresql@15-pg1.service", // Reload, stopped
		u + "show " + show + " pgherd-postgresql@15-pg1.service", // Status
		u + "show " + show + " pgherd-postgresql@15-pg1.service", // Start, running
		u + "show " + show + " pgherd-postgresql@15-pg1.service", // Uninstall, running
		u + "show " + show + " pgherd-postgresql@15-pg1.service", u + "reload pgherd-postgresql@15-pg1.service",
		u + "stop pgherd-postgresql@15-pg1.service",
		u + "show " + show + " pgherd-postgresql@15-pg1.service", // Status, restarting
		u + "show " + show + " pgherd-postgresql@15-pg1.service", // Status, given up
		u + "show " + show + " pgherd-postgresql@15-pg1.service", u + "disable pgherd-postgresql@15-pg1.service", u + "daemon-reload",
		u + "show " + show + " pgherd-postgresql@15-pg2.service", u + "disable pgherd-postgresql@15-pg2.service", u + "daemon-reload",
	}
	if !slices.Equal(f.calls, want) {
		t.Errorf("systemctl calls:\n%s\nwant:\n%s", strings.Join(f.calls, "\n"), strings.Join(want, "\n"))
	}
}

// TestSystemdInstallUndo: when enabling fails, Install leaves no file behind.
func TestSystemdInstallUndo(t *testing.T) {
	dir := t.TempDir()
	f := &fakeSystemctl{failOn: "enable"}
	m := NewSystemd(Config{UnitDir: dir, Runner: f})
	err := m.Install(context.Background(), unitCases("/usr/bin/pgherd", nil, nil)[1])
	if err == nil || !strings.Contains(err.Error(), "Failed to enable") {
		t.Fatalf("Install = %v, want systemctl's error", err)
	}
	if left := readTree(t, dir, ""); len(left) != 0 {
		t.Errorf("a failed Install left %v", keys(left))
	}
	if last := f.calls[len(f.calls)-1]; last != "systemctl daemon-reload" {
		t.Errorf("after undoing, systemd was not reloaded: last call %q", last)
	}
}

func TestSystemdUserUnitForAnotherUser(t *testing.T) {
	m := NewSystemd(Config{UnitDir: t.TempDir(), UserMode: true, Runner: &fakeSystemctl{}})
	s := unitCases("/usr/bin/pgherd", nil, &User{Name: "other", UID: uint32(os.Geteuid()) + 1})[2]
	if err := m.Install(context.Background(), s); err == nil || !strings.Contains(err.Error(), "a user unit cannot run as user other") {
		t.Fatalf("Install = %v", err)
	}
}

func TestDetect(t *testing.T) {
	ctx := context.Background()
	none := filepath.Join(t.TempDir(), "absent")
	if got := detect(ctx, none, &fakeSystemctl{}); got != "process" {
		t.Errorf("without /run/systemd/system: %s", got)
	}
	sd := t.TempDir()
	for out, want := range map[string]string{"running\n": "systemd", "degraded\n": "systemd", "offline\n": "process", "": "process"} {
		r := runFunc(func(context.Context, run.Cmd) (run.Result, error) {
			return run.Result{Stdout: out}, &run.Error{Args: []string{"systemctl"}, ExitCode: 1}
		})
		if got := detect(ctx, sd, r); got != want {
			t.Errorf("is-system-running says %q: %s, want %s", out, got, want)
		}
	}
	if !isDir("/run/systemd/system") {
		if got := Detect(); got != "process" {
			t.Errorf("Detect() = %s on a machine where systemd does not run", got)
		}
	}
}

type runFunc func(context.Context, run.Cmd) (run.Result, error)

func (f runFunc) Run(ctx context.Context, c run.Cmd) (run.Result, error) { return f(ctx, c) }
