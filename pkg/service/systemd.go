package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pgherd/pgherd/pkg/run"
	"github.com/pgherd/pgherd/pkg/supervise"
	"github.com/pgherd/pgherd/templates"
)

// NewSystemd returns the manager that runs services as instances of the
// template units pgherd-<kind>@.service, through systemctl (--user in user
// mode).
//
// Layout in UnitDir, for a service patroni/15-pg1:
//
//	pgherd-patroni@.service                       the kind's policy (KillMode, Restart, timeouts)
//	pgherd-patroni@15-pg1.service.d/instance.conf this instance: ExecStart, Type, KillSignal, User
//	pgherd-patroni@15-pg1.service.d/environment   this instance's environment, mode 0600
//
// Why a drop-in rather than an EnvironmentFile read by the template's
// ExecStart: the program path differs between instances (one bindir per
// PostgreSQL version) and systemd expands no variable in it, so the whole
// command line has to be per instance; a drop-in also carries User= and
// KillSignal= as the Service says, and `systemd-analyze verify` checks it.
// The environment stays out of the drop-in because unit files are world
// readable (and so is `systemctl show`) while an EnvironmentFile may be 0600.
// Everything of an instance lives in its one .d directory, so Uninstall is a
// single removal.
func NewSystemd(cfg Config) Manager {
	if cfg.Runner == nil {
		cfg.Runner = run.Exec{}
	}
	if cfg.Policy == (supervise.Policy{}) {
		cfg.Policy = DefaultPolicy
	}
	return &systemdManager{cfg: cfg}
}

type systemdManager struct{ cfg Config }

func (m *systemdManager) Name() string { return "systemd" }

func templateName(kind string) string { return "pgherd-" + kind + "@.service" }

func unitName(s Service) string { return "pgherd-" + s.Kind + "@" + s.Instance + ".service" }

func (m *systemdManager) dropinDir(s Service) string {
	return filepath.Join(m.cfg.UnitDir, unitName(s)+".d")
}

// Install writes the kind's template unit and the instance's drop-in and
// environment file, then reloads systemd and enables the unit. On failure it
// removes what it created.
func (m *systemdManager) Install(ctx context.Context, s Service) (err error) {
	if err := s.check(); err != nil {
		return err
	}
	if m.cfg.UnitDir == "" {
		return fmt.Errorf("%s: no unit directory configured", s)
	}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	var unit bytes.Buffer
	if err := templates.Render(&unit, templateName(s.Kind), m.unitData()); err != nil {
		return err
	}
	if err := os.MkdirAll(m.cfg.UnitDir, 0o755); err != nil {
		return fmt.Errorf("%s: %w", s, err)
	}
	tmplPath := filepath.Join(m.cfg.UnitDir, templateName(s.Kind))
	_, statErr := os.Stat(tmplPath)
	if _, err := writeIfChanged(tmplPath, unit.Bytes(), 0o644); err != nil {
		return fmt.Errorf("%s: %w", s, err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		undo = append(undo, func() { os.Remove(tmplPath) })
	}

	dir := m.dropinDir(s)
	if !isDir(dir) {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		undo = append(undo, func() { os.RemoveAll(dir) })
	}
	envPath := filepath.Join(dir, "environment")
	dropin, err := m.renderDropin(s, envPath)
	if err != nil {
		return err
	}
	if _, err := writeIfChanged(envPath, envFile(s.Env), 0o600); err != nil {
		return fmt.Errorf("%s: %w", s, err)
	}
	if _, err := writeIfChanged(filepath.Join(dir, "instance.conf"), dropin, 0o644); err != nil {
		return fmt.Errorf("%s: %w", s, err)
	}
	undo = append(undo, func() { _ = m.systemctl(ctx, "daemon-reload") })
	if err := m.systemctl(ctx, "daemon-reload"); err != nil {
		return fmt.Errorf("cannot install %s: %w", s, err)
	}
	if err := m.systemctl(ctx, "enable", unitName(s)); err != nil {
		return fmt.Errorf("cannot install %s: %w", s, err)
	}
	return nil
}

// unitData feeds the kinds' unit templates: the restart policy, as
// systemd 252 can say it (no doubling of RestartSec=: RestartSteps= came in
// 254). StartLimitIntervalSec= covers MaxTries quick failures, each StableAfter long at most.
func (m *systemdManager) unitData() any {
	p := m.cfg.Policy
	return struct {
		UserMode           bool
		RestartSec         string
		MaxTries           int
		StartLimitInterval int
	}{m.cfg.UserMode, strconv.FormatFloat(p.Delay.Seconds(), 'f', -1, 64) + "s", p.MaxTries,
		int((time.Duration(p.MaxTries)*(p.Delay+p.StableAfter) + time.Second - 1) / time.Second)}
}

// dropinData feeds instance.conf.tmpl; every value is already escaped for a
// unit file.
type dropinData struct {
	Unit, Template, Description   string
	Type, KillSignal, User, Group string
	EnvironmentFile, ExecStart    string
	ExecStopPost                  string
}

func (m *systemdManager) renderDropin(s Service, envPath string) ([]byte, error) {
	d := dropinData{
		Unit:            unitName(s),
		Template:        templateName(s.Kind),
		Type:            "exec", // unlike simple, a program that cannot be executed fails the start
		KillSignal:      signalName(s.StopSignal),
		EnvironmentFile: unitEscape(envPath),
	}
	if s.Notify {
		d.Type = "notify"
	}
	for _, v := range append([]string{s.Description}, s.Exec...) {
		if strings.ContainsAny(v, "\n\r") {
			return nil, fmt.Errorf("%s: a unit setting cannot hold a line break: %q", s, v)
		}
	}
	d.Description = unitEscape(s.Description)
	args := make([]string, len(s.Exec))
	for i, a := range s.Exec {
		args[i] = quoteExecArg(a)
	}
	d.ExecStart = strings.Join(args, " ")
	if f := s.Fence; f != nil {
		sup, err := supervisorPath(m.cfg.Supervisor)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
		var post []string
		for _, a := range []string{sup, "fence", "--data-dir", f.DataDir, "--pg-ctl", f.PgCtl} {
			if strings.ContainsAny(a, "\n\r") {
				return nil, fmt.Errorf("%s: a unit setting cannot hold a line break: %q", s, a)
			}
			post = append(post, quoteExecArg(a))
		}
		d.ExecStopPost = strings.Join(post, " ")
	}
	if s.User != nil {
		if m.cfg.UserMode {
			if s.User.UID != uint32(os.Geteuid()) {
				return nil, fmt.Errorf("%s: a user unit cannot run as user %s: install it as root, or run pgherd as that user", s, s.User.Name)
			}
		} else {
			// The group by number: exactly what the Service says, whatever
			// the group database of the host that renders the unit.
			d.User, d.Group = s.User.Name, strconv.Itoa(int(s.User.GID))
			if d.User == "" {
				d.User = strconv.Itoa(int(s.User.UID))
			}
		}
	}
	var b bytes.Buffer
	if err := templates.Render(&b, "instance.conf", d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// unitEscape escapes systemd's specifiers (%).
func unitEscape(v string) string { return strings.ReplaceAll(v, "%", "%%") }

// quoteExecArg quotes one ExecStart argument: double quotes with C escapes,
// $ and % doubled so that systemd expands neither variables nor specifiers.
func quoteExecArg(a string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`)
	return `"` + r.Replace(a) + `"`
}

// envFile renders env as an EnvironmentFile: every value double-quoted, with
// the characters systemd unescapes there (\ " ` $) escaped.
func envFile(env []string) []byte {
	var b bytes.Buffer
	b.WriteString("# Generated by pgherd: the whole environment of the service besides what systemd sets.\n")
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`)
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		fmt.Fprintf(&b, "%s=\"%s\"\n", k, r.Replace(v))
	}
	return b.Bytes()
}

func (m *systemdManager) Start(ctx context.Context, s Service) error {
	if err := s.check(); err != nil {
		return err
	}
	st, err := m.Status(ctx, s)
	if err != nil {
		return err
	}
	if st.Running {
		return fmt.Errorf("cannot start %s: %w (PID %d); stop it first", s, ErrAlreadyRunning, st.PID)
	}
	if err := m.systemctl(ctx, "start", unitName(s)); err != nil {
		return fmt.Errorf("cannot start %s: %w; see journalctl %s-u %s", s, err, m.userFlag(), unitName(s))
	}
	return nil
}

func (m *systemdManager) Stop(ctx context.Context, s Service) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := m.systemctl(ctx, "stop", unitName(s)); err != nil {
		return fmt.Errorf("cannot stop %s: %w", s, err)
	}
	return nil
}

func (m *systemdManager) Reload(ctx context.Context, s Service) error {
	if err := s.check(); err != nil {
		return err
	}
	st, err := m.Status(ctx, s)
	if err != nil {
		return err
	}
	if !st.Running {
		return fmt.Errorf("cannot reload %s: %w", s, ErrNotRunning)
	}
	if err := m.systemctl(ctx, "reload", unitName(s)); err != nil {
		return fmt.Errorf("cannot reload %s: %w", s, err)
	}
	return nil
}

// Status asks systemd for the unit's state, main PID and restarts. A unit
// that is waiting to be restarted, or unknown to systemd, is not running; a
// failed one was given up (its start limit hit, or a failure with nothing
// to restart it).
func (m *systemdManager) Status(ctx context.Context, s Service) (State, error) {
	if err := s.check(); err != nil {
		return State{}, err
	}
	res, err := m.cfg.Runner.Run(ctx, run.Cmd{Args: m.args("show", "-p", "ActiveState", "-p", "MainPID",
		"-p", "SubState", "-p", "NRestarts", "-p", "Result", unitName(s))})
	if err != nil {
		return State{}, fmt.Errorf("cannot get the state of %s: %w", s, err)
	}
	p := map[string]string{}
	for _, line := range strings.Split(res.Stdout, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		p[k] = v
	}
	pid, _ := strconv.Atoi(p["MainPID"])
	st := State{Supervision: "supervised by systemd"}
	st.Restarts, _ = strconv.Atoi(p["NRestarts"])
	if r := p["Result"]; r != "" && r != "success" {
		st.LastExit = r
	}
	switch p["ActiveState"] {
	case "active", "activating", "reloading", "deactivating":
		st.Active = true
		if pid > 0 {
			st.Running, st.PID = true, pid
		}
		if p["SubState"] == "auto-restart" {
			st.Supervision = "restarting (systemd: " + st.LastExit + ")"
			st.Restarting = true
		}
	case "failed":
		st.GaveUp = true
		st.Supervision = "given up by systemd (" + st.LastExit + ")"
	}
	return st, nil
}

// Uninstall disables the unit and removes the instance's drop-in directory,
// and the kind's template when no other instance uses it.
func (m *systemdManager) Uninstall(ctx context.Context, s Service) error {
	if err := s.check(); err != nil {
		return err
	}
	st, err := m.Status(ctx, s)
	if err != nil {
		return err
	}
	if st.Running {
		return fmt.Errorf("cannot uninstall %s: %w (PID %d); stop it first", s, ErrStillRunning, st.PID)
	}
	dir := m.dropinDir(s)
	if !isDir(dir) {
		return nil
	}
	if err := m.systemctl(ctx, "disable", unitName(s)); err != nil {
		return fmt.Errorf("cannot uninstall %s: %w", s, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("cannot uninstall %s: %w", s, err)
	}
	others, _ := filepath.Glob(filepath.Join(m.cfg.UnitDir, "pgherd-"+s.Kind+"@?*.service.d"))
	if len(others) == 0 {
		if err := os.Remove(filepath.Join(m.cfg.UnitDir, templateName(s.Kind))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cannot uninstall %s: %w", s, err)
		}
	}
	if err := m.systemctl(ctx, "daemon-reload"); err != nil {
		return fmt.Errorf("cannot uninstall %s: %w", s, err)
	}
	return nil
}

func (m *systemdManager) userFlag() string {
	if m.cfg.UserMode {
		return "--user "
	}
	return ""
}

func (m *systemdManager) args(a ...string) []string {
	if m.cfg.UserMode {
		return append([]string{"systemctl", "--user"}, a...)
	}
	return append([]string{"systemctl"}, a...)
}

func (m *systemdManager) systemctl(ctx context.Context, a ...string) error {
	_, err := m.cfg.Runner.Run(ctx, run.Cmd{Args: m.args(a...)})
	return err
}
