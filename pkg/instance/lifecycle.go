package instance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/postgres"
	"github.com/pgherd/pgherd/pkg/run"
	"github.com/pgherd/pgherd/pkg/safefs"
	"github.com/pgherd/pgherd/pkg/service"
	"github.com/pgherd/pgherd/pkg/site"
)

// stopSignal asks the postmaster for a fast shutdown.
const stopSignal = syscall.SIGINT

// StartTimeout bounds the wait for a starting server to accept connections.
var StartTimeout = 120 * time.Second

// Start starts the instance and returns once it accepts connections.
func Start(ctx context.Context, env *Env, i *Instance) error {
	if i.PatroniManaged() {
		return patroniStart(ctx, env, i)
	}
	svc := i.Service(env)
	if i.State() == Started {
		// Symmetric with Stop: nothing to do, except supervising again a
		// postmaster that a crashed supervisor left running.
		if st, err := env.Services.Status(ctx, svc); err == nil && st.Running && st.Supervision == "unsupervised" {
			if err := env.Services.Start(ctx, svc); err != nil && !errors.Is(err, service.ErrAlreadyRunning) {
				return fmt.Errorf("supervising %s again: %w", i.ID(), err)
			}
		}
		logging.From(ctx).Info("instance " + i.ID() + " is already running")
		return nil
	}
	logging.From(ctx).Info("starting PostgreSQL instance " + i.ID())
	if err := postgres.CheckInstalled(env.Site.PostgreSQL.Bindir, i.Version); err != nil {
		return err
	}
	if err := env.Services.Start(ctx, svc); err != nil {
		if errors.Is(err, service.ErrStartFailed) {
			return fmt.Errorf("PostgreSQL %s did not start: %s", i.ID(), lastLogLines(i))
		}
		return fmt.Errorf("starting %s: %w", i.ID(), err)
	}
	if err := waitReady(ctx, env, i); err != nil {
		// Nothing keeps restarting a server that failed its start.
		_ = env.Services.Stop(context.WithoutCancel(ctx), svc)
		return err
	}
	return nil
}

// waitReady polls postmaster.pid until the server says "ready", or fails
// with the end of the server's log when it died on the way.
func waitReady(ctx context.Context, env *Env, i *Instance) error {
	deadline := time.Now().Add(StartTimeout)
	svc := i.Service(env)
	for delay := 2 * time.Millisecond; ; delay = min(delay*2, 50*time.Millisecond) {
		if p, ok := postgres.Running(i.DataDir); ok && p.Status == "ready" {
			return nil
		}
		st, err := env.Services.Status(ctx, svc)
		if err == nil && !st.Running {
			return fmt.Errorf("PostgreSQL %s did not start: %s", i.ID(), lastLogLines(i))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PostgreSQL %s is not ready after %s: %s", i.ID(), StartTimeout, lastLogLines(i))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// lastLogLines returns the end of the start log or of the current server
// log, whichever was written last (a server that fails before its logging
// collector starts writes to the start log), for error messages.
func lastLogLines(i *Instance) string {
	files := []string{currentLogFile(i), filepath.Join(i.LogDir, i.serviceName()+"-start.log")}
	if a, err := os.Stat(files[0]); err == nil {
		if b, err := os.Stat(files[1]); err == nil && b.ModTime().After(a.ModTime()) {
			files[0], files[1] = files[1], files[0]
		}
	}
	for _, f := range files {
		lf, err := openServerLog(i, f)
		if err != nil {
			continue
		}
		b, err := io.ReadAll(lf)
		lf.Close()
		if err != nil || len(b) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 3 {
			lines = lines[len(lines)-3:]
		}
		return fmt.Sprintf("%s (from %s)", strings.Join(lines, " | "), f)
	}
	return "no log written; see 'pgherd instance logs " + i.ID() + "'"
}

// Stop stops a running instance (fast shutdown).
func Stop(ctx context.Context, env *Env, i *Instance) error {
	if i.PatroniManaged() {
		return patroniStop(ctx, env, i)
	}
	svc := i.Service(env)
	if i.State() == Stopped {
		// A server that died (a failed recovery, a crash) is stopped, but
		// its supervisor would start it again, even when it has not
		// noticed the death yet: stop that too.
		if st, err := env.Services.Status(ctx, svc); err != nil || !st.Active {
			logging.From(ctx).Info("instance " + i.ID() + " is already stopped")
			return nil
		}
	}
	logging.From(ctx).Info("stopping PostgreSQL instance " + i.ID())
	if err := env.Services.Stop(ctx, svc); err != nil {
		return fmt.Errorf("stopping %s: %w", i.ID(), err)
	}
	return nil
}

// Restart stops then starts the instance.
func Restart(ctx context.Context, env *Env, i *Instance) error {
	if i.PatroniManaged() {
		return patroniRestart(ctx, i)
	}
	if err := Stop(ctx, env, i); err != nil {
		return err
	}
	return Start(ctx, env, i)
}

// ServiceState is what the service manager says of the daemon pgherd runs
// for the instance: its Patroni when Patroni manages it, else its
// postmaster; name says which.
func ServiceState(ctx context.Context, env *Env, i *Instance) (name string, st service.State, err error) {
	svc := i.Service(env)
	if i.PatroniManaged() {
		svc = i.patroniService(env)
	}
	st, err = env.Services.Status(ctx, svc)
	return svc.Kind + " service", st, err
}

// Reload makes a running instance re-read its configuration files.
func Reload(ctx context.Context, env *Env, i *Instance) error {
	if i.PatroniManaged() {
		return patroniReload(ctx, i)
	}
	if i.State() != Started {
		return fmt.Errorf("instance %s is not running: start it with 'pgherd instance start %s'", i.ID(), i.ID())
	}
	logging.From(ctx).Info("reloading PostgreSQL instance " + i.ID())
	if err := env.Services.Reload(ctx, i.Service(env)); err != nil {
		return fmt.Errorf("reloading %s: %w", i.ID(), err)
	}
	return nil
}

// DropRequest says what instance drop removes besides the instance.
type DropRequest struct {
	// PurgeCluster, for a Patroni member, also removes its cluster from
	// the DCS; the member must be the cluster's last running one.
	PurgeCluster bool
}

// DropResult is what Drop removed besides the instance.
type DropResult struct {
	// PurgedKeys is how many DCS keys PurgeCluster deleted.
	PurgedKeys int64
}

// Drop stops the instance and removes its service, data, WAL, log files
// and pgpass file. The data directory is deleted only if it belongs to the
// PostgreSQL account and holds PG_VERSION (isDataDir); the WAL deleted is
// where its pg_wal link points, only once it proved to be this instance's
// (walCheck). A refusal is reported before anything is dropped, and the
// deletions go through safefs.RemoveDir.
func Drop(ctx context.Context, env *Env, i *Instance, req DropRequest) (*DropResult, error) {
	res := &DropResult{}
	if req.PurgeCluster && !i.PatroniManaged() {
		return nil, fmt.Errorf("--purge-cluster: instance %s is not managed by Patroni", i.ID())
	}
	wal, walOK, err := separateWAL(i)
	if err != nil {
		return nil, err
	}
	if err := safefs.CheckDir(i.DataDir, isDataDir(i, env.User)); err != nil {
		return nil, fmt.Errorf("%w; nothing was dropped", err)
	}
	if wal != "" {
		if err := safefs.CheckDir(wal, walOK); err != nil {
			return nil, fmt.Errorf("%w; nothing was dropped", err)
		}
	}
	if i.PatroniManaged() {
		n, err := patroniDrop(ctx, env, i, req.PurgeCluster)
		if err != nil {
			return nil, err
		}
		res.PurgedKeys = n
	}
	return res, dropInstance(ctx, env, i, wal, walOK)
}

// dropInstance stops and deletes a checked instance: wal, if set, passed walOK.
func dropInstance(ctx context.Context, env *Env, i *Instance, wal string, walOK func(*os.Root, uint32) error) error {
	if err := Stop(ctx, env, i); err != nil {
		return err
	}
	logging.From(ctx).Info("dropping PostgreSQL instance " + i.ID())
	if err := env.Services.Uninstall(ctx, i.Service(env)); err != nil {
		return fmt.Errorf("removing the service of %s: %w", i.ID(), err)
	}
	var errs []error
	if wal != "" {
		errs = append(errs, safefs.RemoveDir(wal, walOK))
	}
	errs = append(errs, safefs.RemoveDir(i.DataDir, isDataDir(i, env.User)))
	logs, _ := filepath.Glob(filepath.Join(i.LogDir, i.serviceName()+"-*"))
	for _, p := range logs {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(i.PassFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	// The per-instance directory of the default layout is empty now.
	_ = os.Remove(filepath.Dir(i.DataDir))
	return errors.Join(errs...)
}

// isDataDir approves the deletion of the directory opened at i.DataDir: it
// belongs to the account PostgreSQL runs as and holds PG_VERSION.
func isDataDir(i *Instance, u site.SysUser) func(*os.Root, uint32) error {
	want := uint32(os.Geteuid())
	if u.Switch {
		want = u.UID
	}
	return func(r *os.Root, uid uint32) error {
		if uid != want {
			return fmt.Errorf("%s belongs to uid %d, not to the account PostgreSQL runs as (uid %d): %w", i.DataDir, uid, want, safefs.ErrNotOurs)
		}
		if _, err := r.Lstat("PG_VERSION"); err != nil {
			return fmt.Errorf("%s holds no PG_VERSION: %w", i.DataDir, safefs.ErrNotOurs)
		}
		return nil
	}
}

// runCmd builds a command whose arguments and output must never show secret.
func runCmd(args []string, secret string) run.Cmd {
	return run.Cmd{Args: args, Redact: []string{secret}}
}
