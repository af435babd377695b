package service

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/supervise"
)

// fastPolicy restarts quickly, so that tests state tight bounds.
var fastPolicy = supervise.Policy{Delay: 100 * time.Millisecond, MaxDelay: 400 * time.Millisecond, MaxTries: 3, StableAfter: 2 * time.Second}

type testPostgres struct {
	user                  *User
	dir, data, sock, port string
}

// startSupervisedPostgres starts a throwaway postmaster as user pgherd
// under the process manager, with fastPolicy.
func startSupervisedPostgres(t *testing.T) (Manager, Service, testPostgres) {
	t.Helper()
	p := testPostgres{user: testUser(t), port: strconv.Itoa(freePort(t))}
	p.dir, p.data, p.sock = initdb(t, p.user)
	m := NewProcess(Config{RunDir: filepath.Join(p.dir, "run"), Policy: fastPolicy})
	s := Service{
		Kind: KindPostgreSQL, Instance: "15-sup", User: p.user, StopSignal: syscall.SIGINT,
		Exec:    []string{pgBin + "/postgres", "-D", p.data, "-p", p.port, "-k", p.sock, "-c", "listen_addresses="},
		LogFile: filepath.Join(p.dir, "log", "postgresql.log"),
	}
	killAtEnd(t, m, s)
	if err := m.Start(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return m, s, p
}

// TestSupervisePostgresKill9: the postmaster of a plain instance killed with
// SIGKILL is running and accepting connections again within 15 s (its
// orphaned backends must first notice and exit: they are reaped by the
// supervisor); Stop then stops it for good.
func TestSupervisePostgresKill9(t *testing.T) {
	ctx := context.Background()
	m, s, p := startSupervisedPostgres(t)
	ready := func() bool { return exec.Command(pgBin+"/pg_isready", "-q", "-h", p.sock, "-p", p.port).Run() == nil }
	waitFor(t, 60*time.Second, "PostgreSQL did not accept connections", ready)
	st, _ := m.Status(ctx, s)
	if st.Supervision != "supervised" {
		t.Errorf("Supervision = %q, want supervised", st.Supervision)
	}
	killed := time.Now()
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	const bound = 15 * time.Second
	waitFor(t, bound, "the killed postmaster is not back", func() bool {
		now, _ := m.Status(ctx, s)
		return now.Running && now.PID != st.PID && ready()
	})
	t.Logf("postmaster back and ready %s after SIGKILL", time.Since(killed).Round(time.Millisecond))
	now, _ := m.Status(ctx, s)
	if now.Restarts < 1 || !strings.Contains(now.LastExit, "SIGKILL") {
		t.Errorf("after a restart: %+v", now)
	}
	sup := m.(*processManager).supervisorPID(s)
	if err := m.Stop(ctx, s); err != nil {
		t.Fatal(err)
	}
	// Stopped for good: its supervisor, the only thing that restarts it,
	// is gone with it.
	if supervise.Inspect(sup, nil).Alive {
		t.Errorf("the supervisor (PID %d) still runs after Stop", sup)
	}
	if st, _ := m.Status(ctx, s); st.Running || ready() || st.Supervision != "" {
		t.Errorf("PostgreSQL after Stop: %+v", st)
	}
}

// TestSuperviseCrashLoop: a daemon that fails at every start after the first
// is given up after MaxTries tries in a row, and Status says so.
func TestSuperviseCrashLoop(t *testing.T) {
	ctx := context.Background()
	dir := sharedDir(t)
	marker := filepath.Join(dir, "started-once")
	m := NewProcess(Config{RunDir: filepath.Join(dir, "run"), Policy: fastPolicy, StopTimeout: 10 * time.Second})
	s := Service{Kind: KindDCS, Instance: "loop", LogFile: filepath.Join(dir, "loop.log"),
		Exec: []string{"/bin/sh", "-c", `if [ -e "$0" ]; then echo broken; exit 3; fi; : >"$0"; while :; do sleep 1; done`, marker}}
	killAtEnd(t, m, s)
	if err := m.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	st, _ := m.Status(ctx, s)
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// 3 tries: the kill, then two failed starts 100 and 200 ms later.
	waitFor(t, 5*time.Second, "the crash loop was not given up", func() bool {
		st, _ := m.Status(ctx, s)
		return st.GaveUp
	})
	st, _ = m.Status(ctx, s)
	want := "given up after 3 tries (exited with status 3)"
	if st.Running || st.Restarting || st.Supervision != want || st.Restarts != 2 {
		t.Errorf("Status = %+v; want not running, %q, 2 restarts", st, want)
	}
	if pm := m.(*processManager); pm.supervisorPID(s) != 0 {
		t.Error("the supervisor still runs after giving up")
	}
	// Starting it again is how a person resumes it.
	os.Remove(marker)
	if err := m.Start(ctx, s); err != nil {
		t.Fatalf("Start after giving up: %v", err)
	}
	if st, _ := m.Status(ctx, s); !st.Running || st.GaveUp || st.Supervision != "supervised" {
		t.Errorf("Start after giving up: %+v", st)
	}
	if err := m.Stop(ctx, s); err != nil {
		t.Fatal(err)
	}
}

// TestSuperviseAdoptOrphan: a daemon whose supervisor crashed is found
// running unsupervised, adopted by the next Start (not started twice) and
// supervised again: killed, it is restarted.
func TestSuperviseAdoptOrphan(t *testing.T) {
	ctx := context.Background()
	m, s, _ := newTestProcess(t, "orphan", "/usr/bin/sleep", "300")
	m = NewProcess(Config{RunDir: m.(*processManager).cfg.RunDir, Policy: fastPolicy, StopTimeout: 10 * time.Second})
	pm := m.(*processManager)
	killAtEnd(t, m, s)
	if err := m.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	st, _ := m.Status(ctx, s)
	if err := syscall.Kill(pm.supervisorPID(s), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the supervisor did not die", func() bool { return pm.supervisorPID(s) == 0 })
	now, _ := m.Status(ctx, s)
	if !now.Running || now.PID != st.PID || now.Supervision != "unsupervised" {
		t.Fatalf("after the supervisor's death: %+v", now)
	}
	if err := m.Start(ctx, s); err != nil {
		t.Fatalf("Start over an unsupervised daemon: %v", err)
	}
	now, _ = m.Status(ctx, s)
	if now.PID != st.PID || now.Supervision != "supervised" {
		t.Fatalf("Start did not adopt PID %d: %+v", st.PID, now)
	}
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "the adopted daemon was not restarted", func() bool {
		now, _ := m.Status(ctx, s)
		return now.Running && now.PID != st.PID
	})
	if err := m.Stop(ctx, s); err != nil {
		t.Fatal(err)
	}
}

// TestSuperviseRecycledPIDs: pidfiles naming a live process that is not ours
// (a recycled PID) are neither trusted nor signalled.
func TestSuperviseRecycledPIDs(t *testing.T) {
	ctx := context.Background()
	m, s, pidfile := newTestProcess(t, "recycled", "/usr/bin/sleep", "300")
	pm := m.(*processManager)
	other := exec.Command("/usr/bin/sleep", "301")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	killAtEnd(t, m, s)
	for _, f := range []string{pidfile, pm.file(s, ".supervisor.pid")} {
		if err := os.WriteFile(f, []byte(strconv.Itoa(other.Process.Pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := m.Status(ctx, s); err != nil || st.Running || st.Supervision != "" {
		t.Errorf("Status with recycled PIDs: %+v, %v", st, err)
	}
	if err := m.Start(ctx, s); err != nil {
		t.Fatalf("Start over recycled PIDs: %v", err)
	}
	if err := m.Stop(ctx, s); err != nil {
		t.Fatal(err)
	}
	if !supervise.Inspect(other.Process.Pid, []string{"/usr/bin/sleep", "301"}).Ours {
		t.Error("an unrelated process named by a pidfile was signalled")
	}
}

// TestSuperviseRefusesUnexecutable: a program the service's account cannot
// execute is refused before anything starts.
func TestSuperviseRefusesUnexecutable(t *testing.T) {
	ctx := context.Background()
	u := testUser(t)
	dir := sharedDir(t)
	prog := filepath.Join(dir, "daemon")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\nexec sleep 300\n"), 0o700); err != nil { // root's only
		t.Fatal(err)
	}
	m := NewProcess(Config{RunDir: filepath.Join(dir, "run")})
	s := Service{Kind: KindPatroni, Instance: "noexec", User: u, Exec: []string{prog}, LogFile: filepath.Join(dir, "log", "noexec.log")}
	killAtEnd(t, m, s)
	err := m.Start(ctx, s)
	if err == nil || !strings.Contains(err.Error(), "is not executable by pgherd") {
		t.Fatalf("Start of a program pgherd cannot execute: %v", err)
	}
	if st, _ := m.Status(ctx, s); st.Running || m.(*processManager).supervisorPID(s) != 0 {
		t.Errorf("something started: %+v", st)
	}
	if _, err := os.Stat(m.(*processManager).file(s, ".spec")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused start left its spec: %v", err)
	}
}

// TestFenceCommand: the Patroni unit's ExecStopPost= (run as the unit's
// user) stops a primary when Patroni failed, fast, and leaves it alone
// after a clean stop.
func TestFenceCommand(t *testing.T) {
	_, _, p := startSupervisedPostgres(t)
	u, dir, data := p.user, p.dir, p.data
	waitFor(t, 60*time.Second, "PostgreSQL did not start", func() bool { _, ok := supervise.Primary(data); return ok })
	built, err := supervisorPath("")
	if err != nil {
		t.Fatal(err)
	}
	// Where the unit's user can reach it, as beside an installed pgherd.
	sup := filepath.Join(dir, SupervisorName)
	b, err := os.ReadFile(built)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sup, b, 0o755); err != nil {
		t.Fatal(err)
	}
	fence := func(result string) string {
		cmd := exec.Command(sup, "fence", "--data-dir", data, "--pg-ctl", pgBin+"/pg_ctl")
		cmd.Env = []string{"SERVICE_RESULT=" + result, "PATH=/usr/bin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("fence with SERVICE_RESULT=%s: %v\n%s", result, err, out)
		}
		return string(out)
	}
	fence("success")
	if _, ok := supervise.Primary(data); !ok {
		t.Fatal("a clean stop of Patroni fenced PostgreSQL")
	}
	out := fence("signal")
	if _, ok := supervise.Primary(data); ok || !strings.Contains(out, "PostgreSQL stopped (fast)") {
		t.Fatalf("after Patroni failed, PostgreSQL still runs as a primary:\n%s", out)
	}
	if usage := exec.Command(sup, "fence", "--data-dir", data).Run(); usage == nil {
		t.Error("fence without --pg-ctl: exit 0")
	} else if ee, ok := usage.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("fence without --pg-ctl: %v, want exit code 2", usage)
	}
}

// TestSuperviseFullDisk: a full disk where the spec and pidfiles go is a
// clear error; nothing starts and nothing half-written is left.
func TestSuperviseFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to mount a small tmpfs")
	}
	ctx := context.Background()
	dir := sharedDir(t)
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", run).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", run).Run() })
	m := NewProcess(Config{RunDir: run, StopTimeout: 10 * time.Second})
	s := Service{Kind: KindDCS, Instance: "full", Exec: []string{"/usr/bin/sleep", "300"}, LogFile: filepath.Join(dir, "full.log")}
	killAtEnd(t, m, s)
	if err := m.Install(ctx, s); err != nil {
		t.Fatal(err)
	}
	filler, err := os.Create(filepath.Join(run, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = filler.Write(make([]byte, 4096))
	}
	filler.Close()
	err = m.Start(ctx, s)
	if err == nil || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), ".spec") {
		t.Fatalf("Start on a full disk: %v; want an error naming the spec and ENOSPC", err)
	}
	entries, _ := os.ReadDir(filepath.Join(run, KindDCS))
	for _, e := range entries {
		if e.Name() != "full.lock" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if st, _ := m.Status(ctx, s); st.Running {
		t.Errorf("started on a full disk: %+v", st)
	}
}

// TestSuperviseDetachForUpgrade: SIGUSR2 makes a supervisor exit and leave
// its daemon running (the upgrade path in DESIGN.md); the next Start adopts
// the daemon under the (new) supervisor binary without restarting it.
func TestSuperviseDetachForUpgrade(t *testing.T) {
	ctx := context.Background()
	m, s, _ := newTestProcess(t, "upgrade", "/usr/bin/sleep", "300")
	pm := m.(*processManager)
	killAtEnd(t, m, s)
	if err := m.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	st, _ := m.Status(ctx, s)
	old := pm.supervisorPID(s)
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the supervisor did not detach", func() bool { return pm.supervisorPID(s) == 0 })
	if now, _ := m.Status(ctx, s); !now.Running || now.PID != st.PID || now.Supervision != "unsupervised" {
		t.Fatalf("after detaching: %+v; want PID %d running unsupervised", now, st.PID)
	}
	if err := m.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	if now, _ := m.Status(ctx, s); now.PID != st.PID || now.Supervision != "supervised" || pm.supervisorPID(s) == old {
		t.Fatalf("after Start: %+v; want PID %d adopted by a new supervisor", now, st.PID)
	}
	if err := m.Stop(ctx, s); err != nil {
		t.Fatal(err)
	}
	if supervise.Inspect(st.PID, s.Exec).Alive {
		t.Error("Stop left the adopted daemon running")
	}
}

// TestSupervisorCost pins the memory budget: at most 5 MB RSS per
// supervisor (make bench also reports its idle CPU).
func TestSupervisorCost(t *testing.T) {
	ctx := context.Background()
	m, s, _ := newTestProcess(t, "cost", "/usr/bin/sleep", "300")
	killAtEnd(t, m, s)
	if err := m.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	sup := m.(*processManager).supervisorPID(s)
	status, err := os.ReadFile("/proc/" + strconv.Itoa(sup) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			if kb, _ := strconv.Atoi(f[1]); kb > 5*1024 {
				t.Errorf("supervisor RSS %d kB, budget 5120 kB", kb)
			} else {
				t.Logf("supervisor RSS %d kB", kb)
			}
		}
	}
	if err := m.Stop(ctx, s); err != nil {
		t.Fatal(err)
	}
}

// TestStatusActiveBeforeTheSupervisorNotices: a daemon that has just died,
// before its supervisor has noticed (held here with SIGSTOP), is not
// running but still Active: its supervisor is about to start it again, so
// a caller that wants it stopped must stop the service (the restore of a
// plain instance once found its server restarted on the old data
// directory after "already stopped").
func TestStatusActiveBeforeTheSupervisorNotices(t *testing.T) {
	ctx := context.Background()
	dir := sharedDir(t)
	m := NewProcess(Config{RunDir: filepath.Join(dir, "run"), Policy: fastPolicy, StopTimeout: 10 * time.Second})
	s := Service{Kind: KindDCS, Instance: "unnoticed", LogFile: filepath.Join(dir, "unnoticed.log"),
		Exec: []string{"/bin/sh", "-c", "while :; do sleep 1; done"}}
	killAtEnd(t, m, s)
	if err := m.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	st, _ := m.Status(ctx, s)
	sup := m.(*processManager).supervisorPID(s)
	if !st.Running || !st.Active || sup == 0 {
		t.Fatalf("after Start: %+v, supervisor %d", st, sup)
	}
	if err := syscall.Kill(sup, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(sup, syscall.SIGCONT)
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the killed daemon still runs", func() bool {
		now, _ := m.Status(ctx, s)
		return !now.Running
	})
	if now, _ := m.Status(ctx, s); !now.Active || now.Restarting || now.GaveUp {
		t.Errorf("Status before the supervisor notices = %+v; want Active, neither restarting nor given up", now)
	}
	syscall.Kill(sup, syscall.SIGCONT)
	if err := m.Stop(ctx, s); err != nil {
		t.Fatal(err)
	}
	if now, _ := m.Status(ctx, s); now.Running || now.Active {
		t.Errorf("after Stop: %+v", now)
	}
}
