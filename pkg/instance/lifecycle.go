package instance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/postgres"
	"github.com/pgherd/pgherd/pkg/run"
	"github.com/pgherd/pgherd/pkg/service"
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
		b, err := os.ReadFile(f)
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
	if i.State() == Stopped {
		logging.From(ctx).Info("instance " + i.ID() + " is already stopped")
		return nil
	}
	logging.From(ctx).Info("stopping PostgreSQL instance " + i.ID())
	if err := env.Services.Stop(ctx, i.Service(env)); err != nil {
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

// Drop stops the instance and removes its service, data, WAL, log files
// and pgpass file.
func Drop(ctx context.Context, env *Env, i *Instance) error {
	if i.PatroniManaged() {
		if err := patroniDrop(ctx, env, i); err != nil {
			return err
		}
	}
	if err := Stop(ctx, env, i); err != nil {
		return err
	}
	logging.From(ctx).Info("dropping PostgreSQL instance " + i.ID())
	if err := env.Services.Uninstall(ctx, i.Service(env)); err != nil {
		return fmt.Errorf("removing the service of %s: %w", i.ID(), err)
	}
	logs, _ := filepath.Glob(filepath.Join(i.LogDir, i.serviceName()+"-*"))
	var errs []error
	for _, p := range append([]string{i.DataDir, i.WALDir, i.PassFile}, logs...) {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	// The per-instance directory of the default layout is empty now.
	_ = os.Remove(filepath.Dir(i.DataDir))
	return errors.Join(errs...)
}

// runCmd builds a command whose arguments and output must never show secret.
func runCmd(args []string, secret string) run.Cmd {
	return run.Cmd{Args: args, Redact: []string{secret}}
}
