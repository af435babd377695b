package dcs

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/service"
)

// config loads the configuration of member name, set up on this host.
func (l *Local) config(name string) (Config, error) {
	cfg, err := LoadConfig(l.ConfigFile(name))
	if errors.Is(err, os.ErrNotExist) {
		return cfg, fmt.Errorf("no dcs member %s is set up on this host (%s): set one up with `pgherd dcs init` or `pgherd dcs join`", name, l.ConfigFile(name))
	}
	return cfg, err
}

// ServiceState is what the service manager says of local member name.
func (l *Local) ServiceState(ctx context.Context, name string) (service.State, error) {
	if _, err := l.config(name); err != nil {
		return service.State{}, err
	}
	return l.Services.Status(ctx, l.service(name))
}

// Start starts local member name and waits until it follows a leader.
// Starting is idempotent: a member that runs (and is supervised) already is
// left alone, and started is false; one found running without its
// supervisor is supervised again.
func (l *Local) Start(ctx context.Context, name string) (started bool, err error) {
	cfg, err := l.config(name)
	if err != nil {
		return false, err
	}
	svc := l.service(name)
	st, err := l.Services.Status(ctx, svc)
	if err != nil {
		return false, err
	}
	if st.Running && st.Supervision != "unsupervised" {
		return false, nil
	}
	if !st.Running {
		if err := l.adopt(cfg); err != nil {
			return false, err
		}
	}
	logging.From(ctx).Info("starting dcs member " + name)
	if err := l.Services.Start(ctx, svc); err != nil && !errors.Is(err, service.ErrAlreadyRunning) {
		return false, err
	}
	if _, err := l.waitReady(ctx, cfg); err != nil {
		log, _ := os.ReadFile(svc.LogFile)
		return false, fmt.Errorf("member %s started but does not follow a leader: %w%s", name, err, lastLines(string(log)))
	}
	return !st.Running, nil
}

// Stop stops local member name, its supervision first, so that nothing
// restarts it. Stopping a stopped member is no error: stopped is false.
func (l *Local) Stop(ctx context.Context, name string) (stopped bool, err error) {
	if _, err := l.config(name); err != nil {
		return false, err
	}
	svc := l.service(name)
	st, err := l.Services.Status(ctx, svc)
	if err != nil {
		return false, err
	}
	logging.From(ctx).Info("stopping dcs member " + name)
	if err := l.Services.Stop(ctx, svc); err != nil {
		return false, err
	}
	return st.Running, nil
}

// Annotate fills the Service field of the members set up on this host.
func (l *Local) Annotate(ctx context.Context, ms []MemberStatus) {
	for i := range ms {
		if _, err := os.Stat(l.ConfigFile(ms[i].Name)); err != nil {
			continue
		}
		if st, err := l.Services.Status(ctx, l.service(ms[i].Name)); err == nil {
			ms[i].Service = st.Words()
		}
	}
}
