package tests

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgherd/pgherd/pkg/postgres"
	"github.com/rogpeppe/go-internal/testscript"
)

// etcdCmd starts a real etcd (Debian's etcd-server) on free 127.0.0.1 ports
// for the rest of the script and points site.yaml's patroni section at it,
// with short HA timings (ttl 20, loop_wait 2, retry_timeout 5) and a free
// REST API port. At the end of the script it stops the Patroni services
// first (so that none restarts a PostgreSQL), then the servers, then etcd.
func etcdCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: etcd")
	}
	work := ts.Getenv("WORK")
	client, err := pickPort()
	ts.Check(err)
	peer, err := pickPort()
	ts.Check(err)
	curl := fmt.Sprintf("http://127.0.0.1:%d", client)
	purl := fmt.Sprintf("http://127.0.0.1:%d", peer)
	out, err := os.Create(filepath.Join(work, "etcd.log"))
	ts.Check(err)
	defer out.Close()
	cmd := exec.Command("etcd", "--name", "e1", "--data-dir", filepath.Join(work, "etcd"),
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "e1="+purl, "--initial-cluster-state", "new")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	ts.Check(cmd.Start())
	ts.Defer(func() {
		stopPatroni(work)
		stopServers(filepath.Join(work, "prefix"))
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(curl + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			ts.Fatalf("etcd is not healthy after 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	writePatroniSite(ts, "127.0.0.1:"+strconv.Itoa(client))
	ts.Setenv("ETCD", "127.0.0.1:"+strconv.Itoa(client))
}

// patroniSiteCmd points site.yaml's patroni section at the DCS endpoint
// given (e.g. a member of pgherd's own store the script starts), and stops
// Patroni, the servers and pgherd's DCS members at the end of the script.
// With a PROFILE, the section names that timing profile instead of
// setting the timings.
func patroniSiteCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: patronisite HOST:PORT [PROFILE]")
	}
	work := ts.Getenv("WORK")
	ts.Defer(func() {
		stopPatroni(work)
		stopServers(filepath.Join(work, "prefix"))
		stopPidfiles(filepath.Join(work, "run", "pid", "dcs"), 10*time.Second)
	})
	writePatroniSite(ts, args[0], args[1:]...)
}

// writePatroniSite appends a patroni section using DCS endpoint dcs, with
// short HA timings (or the timing profile given) and a free REST API port,
// to the script's site.yaml.
func writePatroniSite(ts *testscript.TestScript, dcs string, profile ...string) {
	rest, err := pickPort()
	ts.Check(err)
	timings := "  ttl: 20\n  loop_wait: 2\n  retry_timeout: 5\n"
	if len(profile) == 1 {
		timings = "  timing: " + profile[0] + "\n"
	}
	site := fmt.Sprintf("patroni:\n  restapi_port: %d\n%s  dcs:\n    kind: etcd\n    hosts: [%s]\n", rest, timings, dcs)
	// A DCS that 'pgherd dcs init' made here speaks TLS: Patroni uses the
	// administrator's client certificate, as `pgherd dcs env` gives it,
	// copied where Patroni's account reads it (docs/dcs.md): as root, the
	// members' own account owns admin/.
	if admin := filepath.Join(ts.Getenv("WORK"), "prefix", "dcs", "admin"); fileExists(filepath.Join(admin, "etcd.key")) {
		dir := filepath.Join(ts.Getenv("WORK"), "patroni-dcs")
		ts.Check(os.MkdirAll(dir, 0o700))
		for _, f := range []string{"client-ca.crt", "etcd.crt", "etcd.key"} {
			b, err := os.ReadFile(filepath.Join(admin, f))
			ts.Check(err)
			ts.Check(os.WriteFile(filepath.Join(dir, f), b, 0o600))
		}
		if os.Geteuid() == 0 {
			ts.Check(exec.Command("chown", "-R", sysuser()+":", dir).Run())
		}
		site += fmt.Sprintf("    protocol: https\n    cacert: %s\n    cert: %s\n    key: %s\n",
			filepath.Join(dir, "client-ca.crt"), filepath.Join(dir, "etcd.crt"), filepath.Join(dir, "etcd.key"))
	}
	f, err := os.OpenFile(filepath.Join(ts.Getenv("WORK"), "site.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	ts.Check(err)
	_, err = f.WriteString(site)
	ts.Check(err)
	ts.Check(f.Close())
}

// stopPatroni stops the Patroni daemons the process manager started under
// work: SIGTERM, which makes Patroni stop its PostgreSQL, then SIGKILL after
// 30 seconds.
func stopPatroni(work string) {
	stopPidfiles(filepath.Join(work, "run", "pid", "patroni"), 30*time.Second)
}

// stopPidfiles stops the processes named by the pidfiles in dir (only
// those: by PID), SIGTERM then SIGKILL after grace.
func stopPidfiles(dir string, grace time.Duration) {
	pidfiles, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
	for _, f := range pidfiles {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || !postgres.Alive(pid) {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(grace)
		for postgres.Alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if postgres.Alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
