package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgherd/pgherd/pkg/postgres"
	"github.com/rogpeppe/go-internal/testscript"
)

// haSite appends the Patroni timings and a free REST API port to
// the script's site.yaml (the DCS is the embedded default), and stops the
// script's Patroni daemons, then its DCS members, when the script ends.
func haSite(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: hasite")
	}
	work := ts.Getenv("WORK")
	rest, err := pickPort()
	ts.Check(err)
	f, err := os.OpenFile(filepath.Join(work, "site.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	ts.Check(err)
	_, err = fmt.Fprintf(f, "patroni:\n  restapi_port: %d\n  ttl: 20\n  loop_wait: 2\n  retry_timeout: 5\n", rest)
	ts.Check(err)
	ts.Check(f.Close())
	ts.Defer(func() {
		stopPatroni(work)
		stopByPidfiles(filepath.Join(work, "run", "pid", "dcs"))
	})
}

// stopByPidfiles ends the daemons whose pidfiles are in dir: SIGTERM, then
// SIGKILL after ten seconds.
func stopByPidfiles(dir string) {
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
		deadline := time.Now().Add(10 * time.Second)
		for postgres.Alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if postgres.Alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
