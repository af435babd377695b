// Package tests drives the pgherd command end to end, with testscript
// scripts in testdata/script, against real PostgreSQL from Debian's
// packages. As root, PostgreSQL runs as the unprivileged account named by
// PGHERD_TEST_SYSUSER (default "pgherd", created by 'make deps').
package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/cli"
	"github.com/pgherd/pgherd/pkg/dcs/server"
	"github.com/pgherd/pgherd/pkg/iostreams"
	"github.com/pgherd/pgherd/pkg/postgres"
	"github.com/pgherd/pgherd/pkg/supervise"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"pgherd": func() {
			ctx := context.Background()
			os.Exit(cli.Main(ctx, iostreams.System(), os.Args[1:]))
		},
		// The DCS member daemon, which pgherd finds beside itself.
		"pgherd-dcs": func() {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			code := server.Main(ctx, os.Args[1:], os.Stderr)
			stop()
			os.Exit(code)
		},
		// The supervisor of the process service manager, beside pgherd too.
		"pgherd-supervise": func() { os.Exit(supervise.Main(os.Args[1:], os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:   "testdata/script",
		Setup: setup,
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"jsonshape": jsonShape, "jsonschema": jsonSchemaCmd, "freeport": freePort, "listen": listen, "etcd": etcdCmd,
			"patronisite": patroniSiteCmd, "hasite": haSite,
		},
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		RequireExplicitExec: true,
	})
}

// sysuser is the account PostgreSQL runs as when the tests run as root.
func sysuser() string {
	if u := os.Getenv("PGHERD_TEST_SYSUSER"); u != "" {
		return u
	}
	return "pgherd"
}

// dcsuser is the account DCS members run as when the tests run as root
// (site.yaml's default patroni.dcs.embedded.sysuser).
const dcsuser = "pgherd-dcs"

// setup gives each script its own prefix, runtime directory and free port,
// and stops every PostgreSQL server the script started, even when it fails.
func setup(env *testscript.Env) error {
	// The account that runs PostgreSQL must reach the work directory.
	for d := env.WorkDir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	// The account that runs the DCS daemons must reach pgherd-dcs in
	// testscript's command directory (first on PATH), which is private.
	bin := filepath.SplitList(env.Getenv("PATH"))[0]
	for _, d := range []string{bin, filepath.Dir(bin)} {
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	port, err := pickPort()
	if err != nil {
		return err
	}
	env.Setenv("PORT", strconv.Itoa(port))
	env.Setenv("SYSUSER", sysuser())
	env.Setenv("DCSUSER", dcsuser)
	site := fmt.Sprintf("prefix: %s/prefix\nrun_prefix: %s/run\nservice_manager: process\npostgresql:\n  port: %d\n",
		env.WorkDir, env.WorkDir, port)
	if os.Geteuid() == 0 {
		if _, err := user.Lookup(sysuser()); err != nil {
			return fmt.Errorf("tests run as root need the account %q (run 'make deps'): %w", sysuser(), err)
		}
		site += "sysuser: " + sysuser() + "\n"
		if _, err := user.Lookup(dcsuser); err != nil {
			return fmt.Errorf("tests run as root need the DCS members' account %q (run 'make deps'): %w", dcsuser, err)
		}
	}
	if err := os.WriteFile(filepath.Join(env.WorkDir, "site.yaml"), []byte(site), 0o644); err != nil {
		return err
	}
	env.Setenv("PGHERD_SITE", filepath.Join(env.WorkDir, "site.yaml"))
	env.Setenv("NO_COLOR", "1")
	env.Defer(func() {
		stopSupervisors(filepath.Join(env.WorkDir, "run", "pid"))
		// Scripts play other hosts with other prefixes under $WORK.
		prefixes, _ := filepath.Glob(filepath.Join(env.WorkDir, "*"))
		for _, p := range prefixes {
			stopServers(p)
		}
	})
	return nil
}

// stopSupervisors stops what the process manager's supervisors under dir
// run (SIGTERM: each stops its daemon), so that nothing restarts the
// servers stopServers ends; SIGKILL after ten seconds.
func stopSupervisors(dir string) {
	pidfiles, _ := filepath.Glob(filepath.Join(dir, "*", "*.supervisor.pid"))
	for _, f := range pidfiles {
		pid, err := supervise.ReadPID(f)
		args := []string{"--spec", strings.TrimSuffix(f, ".supervisor.pid") + ".spec"}
		if err != nil || !supervise.Inspect(pid, args).Ours {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(10 * time.Second)
		for supervise.Inspect(pid, args).Ours && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if supervise.Inspect(pid, args).Ours {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// stopServers ends the postmasters whose data directories are under dir:
// a fast shutdown, then SIGKILL after ten seconds.
func stopServers(dir string) {
	pidfiles, _ := filepath.Glob(filepath.Join(dir, "srv", "pgsql", "*", "*", "data", "postmaster.pid"))
	for _, f := range pidfiles {
		p, err := postgres.ReadPIDFile(filepath.Dir(f))
		if err != nil || !postgres.Alive(p.PID) {
			continue
		}
		_ = syscall.Kill(p.PID, syscall.SIGINT)
		deadline := time.Now().Add(10 * time.Second)
		for postgres.Alive(p.PID) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if postgres.Alive(p.PID) {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		}
	}
}

func pickPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freePort sets the named variable to a TCP port nothing listens on.
func freePort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: freeport VAR")
	}
	p, err := pickPort()
	ts.Check(err)
	ts.Setenv(args[0], strconv.Itoa(p))
}

// listen holds a TCP listener on 127.0.0.1 until the script ends and sets
// the named variable to its port. With PORT it listens on that port; when
// something else already does, the port is taken all the same.
func listen(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: listen VAR [PORT]")
	}
	addr := "127.0.0.1:0"
	if len(args) == 2 {
		addr = "127.0.0.1:" + args[1]
	}
	l, err := net.Listen("tcp", addr)
	if len(args) == 2 && errors.Is(err, syscall.EADDRINUSE) {
		ts.Setenv(args[0], args[1])
		return
	}
	ts.Check(err)
	ts.Defer(func() { l.Close() })
	ts.Setenv(args[0], strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
}

// jsonShape prints the shape of the JSON document in a file (stdout by
// default): every key with the type of its value, so that golden files pin
// the documented shape without pinning values that vary between machines.
// Maps whose keys are data (settings) are shown as "object of string".
func jsonShape(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) > 1 {
		ts.Fatalf("usage: jsonshape [FILE]")
	}
	name := "stdout"
	if len(args) == 1 {
		name = args[0]
	}
	var v any
	data := ts.ReadFile(name)
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		ts.Fatalf("%s is not JSON: %v", name, err)
	}
	var b strings.Builder
	shape(&b, "", v)
	ts.Stdout().Write([]byte(b.String()))
}

var dataMaps = map[string]bool{"settings": true}

func shape(b *strings.Builder, path string, v any) {
	switch x := v.(type) {
	case map[string]any:
		if dataMaps[lastKey(path)] {
			fmt.Fprintf(b, "%s: object of string\n", path)
			return
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			shape(b, path+"."+k, x[k])
		}
	case []any:
		if len(x) == 0 {
			fmt.Fprintf(b, "%s: empty array\n", path)
			return
		}
		shape(b, path+"[]", x[0])
	case string:
		fmt.Fprintf(b, "%s: string\n", path)
	case float64:
		fmt.Fprintf(b, "%s: number\n", path)
	case bool:
		fmt.Fprintf(b, "%s: boolean\n", path)
	case nil:
		fmt.Fprintf(b, "%s: null\n", path)
	}
}

func lastKey(path string) string {
	return path[strings.LastIndex(path, ".")+1:]
}
