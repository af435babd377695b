package patroni

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/supervise"
)

// DefaultExe is Debian's Patroni.
const DefaultExe = "/usr/bin/patroni"

// ErrNotInstalled is returned by FindPatroni when there is no Patroni.
var ErrNotInstalled = errors.New("patroni is not installed")

// FindPatroni returns the path of the patroni program exe (a path or a name
// looked up in PATH; "" means DefaultExe), or an error wrapping
// ErrNotInstalled that says how to install it.
func FindPatroni(exe string) (string, error) {
	if exe == "" {
		exe = DefaultExe
	}
	p, err := exec.LookPath(exe)
	if err != nil {
		return "", fmt.Errorf("%w: %s not found; install it (Debian: apt install patroni) or set patroni.execpath in site.yaml", ErrNotInstalled, exe)
	}
	return p, nil
}

// Command is the command line that runs a member: exe and its YAML file.
// With Environ it is what a service manager needs to run Patroni.
func Command(exe, configFile string) []string {
	return []string{exe, configFile}
}

// Environ is the whole environment Patroni must run with. It is built from
// nothing, not filtered from pgherd's own: a PGPASSWORD (or any PG*
// variable) in Patroni's environment overrides the pgpass file Patroni
// writes, and pg_basebackup then fails with "password authentication
// failed" (measured with Patroni 3.0.2). home is the system user's home
// ("" leaves HOME unset).
func Environ(home string) []string {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"}
	if home != "" {
		env = append(env, "HOME="+home)
	}
	return env
}

// startPoll is how often WaitStarted asks Patroni's REST API: a member
// becomes ready between two polls, so a create or start returns on average
// half of it later than it could.
const startPoll = 50 * time.Millisecond

// WaitStarted waits until the member behind client is ready (GET /readiness
// answers 200) and GET /cluster lists it as running, and with leader as the
// cluster's leader (a bootstrap is over only once its first member holds
// the leader key), or ctx ends. Meanwhile
// it logs an INFO progress line every few seconds and, at DEBUG, every new
// line of logFiles (Patroni's log and, when given, PostgreSQL's), so
// `-L debug` shows why a start is slow.
func WaitStarted(ctx context.Context, client *Client, member string, leader bool, logFiles []string) error {
	log := logging.From(ctx)
	fctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	if len(logFiles) > 0 {
		f := NewFollower(logFiles, false)
		go func() {
			defer close(done)
			f.Run(fctx, 200*time.Millisecond, func(l string) { log.Debug(l) })
		}()
	} else {
		close(done)
	}
	defer func() { stop(); <-done }()

	start := time.Now()
	lastReport := start
	log.Info("waiting for Patroni to be ready", "api", client.URL())
	for {
		err := client.Readiness(ctx)
		if err == nil {
			err = memberRunning(ctx, client, member, leader)
		}
		if err == nil {
			log.Info("Patroni is ready", "after", time.Since(start).Round(100*time.Millisecond))
			return nil
		}
		if time.Since(lastReport) >= 5*time.Second {
			log.Info("still waiting for Patroni", "elapsed", time.Since(start).Round(time.Second))
			lastReport = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Patroni at %s was not ready after %s: %w (last answer: %v)",
				client.URL(), time.Since(start).Round(time.Second), ctx.Err(), err)
		case <-time.After(startPoll):
		}
	}
}

// memberRunning returns nil when the cluster lists member as running (and,
// with leader, as its leader).
func memberRunning(ctx context.Context, client *Client, member string, leader bool) error {
	cl, err := client.Cluster(ctx)
	if err != nil {
		return err
	}
	for _, m := range cl.Members {
		if m.Name == member {
			if m.State != "running" {
				return fmt.Errorf("member %s is %s", member, m.State)
			}
			if leader && m.Role != "leader" && m.Role != "standby_leader" {
				return fmt.Errorf("member %s runs but does not hold the leader key yet", member)
			}
			return nil
		}
	}
	return fmt.Errorf("member %s is not in the cluster yet", member)
}

// Fence is how the supervisor of this member's Patroni fences its
// PostgreSQL (pkg/service/DESIGN.md): from the YAML's data and bin
// directories, the bootstrap timings (the cluster's own are read from the
// REST API later), the REST API and the DCS when they speak plain http,
// and the leader key NAMESPACE/SCOPE/leader that holds Name while this
// member leads.
func (c *Config) Fence() *supervise.Fence {
	d := c.Bootstrap.DCS
	f := &supervise.Fence{
		DataDir: c.PostgreSQL.DataDir, PgCtl: filepath.Join(c.PostgreSQL.BinDir, "pg_ctl"),
		TTL: time.Duration(d.TTL) * time.Second, LoopWait: time.Duration(d.LoopWait) * time.Second,
		Member: c.Name,
	}
	if c.RestAPI.CertFile == "" && c.RestAPI.ConnectAddress != "" {
		f.RestURL = "http://" + c.RestAPI.ConnectAddress
	}
	if c.Etcd3.Protocol != "https" {
		for _, h := range c.Etcd3.Hosts {
			f.DCS = append(f.DCS, "http://"+h)
		}
	}
	ns := strings.Trim(c.Namespace, "/")
	if ns == "" {
		ns = "service" // Patroni's default namespace
	}
	f.LeaderKey = "/" + ns + "/" + c.Scope + "/leader"
	return f
}
