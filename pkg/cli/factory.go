package cli

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/pgherd/pgherd/pkg/instance"
	"github.com/pgherd/pgherd/pkg/iostreams"
	"github.com/pgherd/pgherd/pkg/run"
	"github.com/pgherd/pgherd/pkg/service"
	"github.com/pgherd/pgherd/pkg/site"
)

// Factory hands out lazily built dependencies; tests swap them.
type Factory struct {
	IO       *iostreams.IOStreams
	SiteFile string

	// Settings loads the site settings once.
	Settings func() (*site.Loaded, error)
	// Runner runs external programs as the given user (nil: the current one).
	Runner func(u *site.SysUser) run.Runner
}

// NewFactory returns a factory wired to the real system.
func NewFactory(ios *iostreams.IOStreams) *Factory {
	f := &Factory{IO: ios}
	var once sync.Once
	var loaded *site.Loaded
	var err error
	f.Settings = func() (*site.Loaded, error) {
		once.Do(func() { loaded, err = site.Load(f.SiteFile) })
		return loaded, err
	}
	f.Runner = func(u *site.SysUser) run.Runner {
		if u == nil || !u.Switch {
			return run.Exec{}
		}
		return run.Exec{Cred: &syscall.Credential{Uid: u.UID, Gid: u.GID}}
	}
	return f
}

// InstanceEnv builds what instance operations need: settings, the account
// PostgreSQL runs as, a runner for it and the service manager.
func (f *Factory) InstanceEnv() (*instance.Env, error) {
	s, err := f.Settings()
	if err != nil {
		return nil, err
	}
	u, err := s.ResolveUser()
	if err != nil {
		return nil, err
	}
	exe, _ := selfExe()
	return &instance.Env{Site: &s.Settings, User: u, Runner: f.Runner(&u), Services: f.Services(&s.Settings), Pgherd: exe}, nil
}

// Services returns the service manager the site settings choose.
func (f *Factory) Services(s *site.Settings) service.Manager {
	root := os.Geteuid() == 0
	cfg := service.Config{RunDir: filepath.Join(s.RunPrefix, "pid"), UnitDir: s.Systemd.UnitPath, UserMode: !root, Runner: run.Exec{},
		Policy: s.Restart.Policy()}
	if exe, err := selfExe(); err == nil {
		cfg.Supervisor = filepath.Join(filepath.Dir(exe), service.SupervisorName)
	}
	if cfg.UnitDir == "" {
		cfg.UnitDir = "/etc/systemd/system"
		if !root {
			home, _ := os.UserHomeDir()
			cfg.UnitDir = filepath.Join(home, ".config", "systemd", "user")
		}
	}
	switch s.ServiceManager {
	case "auto":
		return service.NewAuto(cfg)
	case "systemd":
		return service.NewSystemd(cfg)
	}
	return service.NewProcess(cfg)
}
