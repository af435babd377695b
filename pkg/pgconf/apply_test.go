package pgconf

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func set(name, value string) Change { return Change{Name: name, Value: value} }

func apply(t *testing.T, tg Target, opts Options, changes ...Change) (*Result, error) {
	t.Helper()
	return Apply(context.Background(), tg, changes, opts)
}

func effects(res *Result) map[string]Effect {
	m := map[string]Effect{}
	for _, ch := range res.Changes {
		m[ch.Name] = ch.Effect
	}
	return m
}

func TestReloadParameter(t *testing.T) {
	s := server(t)
	tg := s.target(t)
	res, err := apply(t, tg, Options{}, set("work_mem", "8MB"), set("effective_cache_size", "1GB"))
	if err != nil {
		t.Fatal(err)
	}
	if got := effects(res); got["work_mem"] != EffectReload || got["effective_cache_size"] != EffectReload || !res.Reloaded {
		t.Errorf("effects %v, reloaded %v", got, res.Reloaded)
	}
	if len(res.Restart) != 0 || res.PendingRestart {
		t.Errorf("restart %v, pending %v", res.Restart, res.PendingRestart)
	}
	if v := s.show(t, "work_mem"); v != "8MB" {
		t.Errorf("SHOW work_mem = %s", v)
	}
	conf, _ := os.ReadFile(s.conf())
	if !bytes.Contains(conf, []byte("\nwork_mem = 8MB\t\t\t\t# min 64kB\n")) {
		t.Error("work_mem was not set on the sample's commented line")
	}
}

func TestRestartParameter(t *testing.T) {
	s := server(t)
	tg := s.target(t)
	res, err := apply(t, tg, Options{}, set("shared_buffers", "256MB"), set("max_connections", "50"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Restart, ",") != "max_connections,shared_buffers" || !res.PendingRestart {
		t.Fatalf("restart %v, pending %v", res.Restart, res.PendingRestart)
	}
	shown, err := Show(context.Background(), tg, []string{"shared_buffers"})
	if err != nil {
		t.Fatal(err)
	}
	if p := shown[0]; !p.PendingRestart || *p.Value != "128MB" || p.SetIn.Value != "256MB" || p.SetIn.File != s.conf() {
		t.Errorf("show before restart: %+v", p)
	}
	s.restart(t)
	if v := s.show(t, "shared_buffers"); v != "256MB" {
		t.Errorf("after restart SHOW shared_buffers = %s", v)
	}
	if v := s.show(t, "max_connections"); v != "50" {
		t.Errorf("after restart SHOW max_connections = %s", v)
	}
}

func TestInvalidValuesAreRefused(t *testing.T) {
	s := server(t)
	tg := s.target(t)
	before, _ := os.ReadFile(s.conf())
	lines := bytes.Count(before, []byte("\n"))
	for _, tc := range []struct{ change, want string }{
		{"shared_buffers=banana", `invalid value for parameter "shared_buffers": "banana"`},
		{"max_connections=-1", `-1 is outside the valid range for parameter "max_connections" (1 .. 262143)`},
		{"wal_level=bogus", `invalid value for parameter "wal_level": "bogus" (HINT: Available values: minimal, replica, logical.)`},
		// Appended after the last line of the file: the message names the real file and line.
		{"no_such_param=1", `unrecognized configuration parameter "no_such_param" in file "` + s.conf() + `" line ` + strconv.Itoa(lines+1)},
		{"server_version=1", `parameter "server_version" cannot be changed`},
		{"work_mem=1.5XB", `invalid value for parameter "work_mem": "1.5XB" (HINT: Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".)`},
	} {
		ch, err := ParseAssignment(tc.change)
		if err != nil {
			t.Fatal(err)
		}
		for _, running := range []bool{true, false} {
			tg.Running = running
			_, err = apply(t, tg, Options{}, ch)
			if !errors.Is(err, ErrRefused) || err.Error() != tc.want {
				t.Errorf("%s (running %v): got %v\nwant %s", tc.change, running, err, tc.want)
			}
		}
		if after, _ := os.ReadFile(s.conf()); !bytes.Equal(after, before) {
			t.Fatalf("%s: the file changed", tc.change)
		}
	}
	if v := s.show(t, "shared_buffers"); v != "128MB" {
		t.Errorf("server state: shared_buffers %s", v)
	}
}

func TestEqualAfterUnitNormalisation(t *testing.T) {
	s := server(t)
	tg := s.target(t)
	res, err := apply(t, tg, Options{}, set("shared_buffers", "131072kB"), set("maintenance_work_mem", "65536kB"))
	if err != nil {
		t.Fatal(err)
	}
	if got := effects(res); got["shared_buffers"] != EffectNone || got["maintenance_work_mem"] != EffectNone {
		t.Errorf("effects %v", got)
	}
	if len(res.Restart) != 0 || res.PendingRestart {
		t.Errorf("restart %v, pending %v", res.Restart, res.PendingRestart)
	}
}

func TestAutoConfWins(t *testing.T) {
	s := server(t)
	tg := s.target(t)
	s.exec(t, "ALTER SYSTEM SET work_mem = '16MB'")
	res, err := apply(t, tg, Options{}, set("work_mem", "8MB"))
	if err != nil {
		t.Fatal(err)
	}
	ch := res.Changes[0]
	if ch.Effect != EffectOverridden || ch.OverriddenBy == nil || ch.OverriddenBy.File != filepath.Join(s.data, AutoConfName) {
		t.Fatalf("change %+v", ch)
	}
	if v := s.show(t, "work_mem"); v != "16MB" {
		t.Errorf("SHOW work_mem = %s", v)
	}
	shown, err := Show(context.Background(), tg, []string{"Work_Mem"})
	if err != nil {
		t.Fatal(err)
	}
	if p := shown[0]; p.SetIn.File != ch.OverriddenBy.File || p.SetIn.Value != "16MB" {
		t.Errorf("show: %+v", p)
	}
}

func TestIncludedFile(t *testing.T) {
	s := server(t)
	tg := s.target(t)
	dir := filepath.Join(s.data, "conf.d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 999, 995); err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(dir, "tuning.conf")
	if err := os.WriteFile(extra, []byte("# tuning\nwork_mem = 2MB # for reports\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(extra, 999, 995); err != nil {
		t.Fatal(err)
	}
	conf, _ := os.ReadFile(s.conf())
	if err := os.WriteFile(s.conf(), append(conf, "work_mem = 1MB\ninclude_dir 'conf.d'\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := apply(t, tg, Options{}, set("work_mem", "8MB"))
	if err != nil {
		t.Fatal(err)
	}
	if ch := res.Changes[0]; ch.File != extra || ch.Line != 2 || *ch.Old != "2MB" || ch.Effect != EffectReload {
		t.Errorf("change %+v", ch)
	}
	if len(res.Commented) != 1 || res.Commented[0].File != s.conf() || res.Commented[0].Value != "1MB" {
		t.Errorf("commented %+v", res.Commented)
	}
	if b, _ := os.ReadFile(extra); string(b) != "# tuning\nwork_mem = 8MB # for reports\n" {
		t.Errorf("tuning.conf: %q", b)
	}
	if v := s.show(t, "work_mem"); v != "8MB" {
		t.Errorf("SHOW work_mem = %s", v)
	}
}

func TestRejectedAtReloadIsRolledBack(t *testing.T) {
	s := server(t)
	tg := s.target(t)
	before, _ := os.ReadFile(s.conf())
	// postgres -C does not load shared_preload_libraries, so it takes the
	// value for a placeholder; the running server knows the enum and refuses.
	res, err := apply(t, tg, Options{}, set("pg_stat_statements.track", "bogus"))
	if !errors.Is(err, ErrRolledBack) || res == nil || !res.RolledBack {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), "pg_stat_statements.track = 'bogus'") {
		t.Errorf("message: %v", err)
	}
	if after, _ := os.ReadFile(s.conf()); !bytes.Equal(after, before) {
		t.Fatal("the file was not restored")
	}
	if v := s.show(t, "pg_stat_statements.track"); v != "top" {
		t.Errorf("pg_stat_statements.track = %s", v)
	}
}

func TestCheckHookRejectionIsRolledBack(t *testing.T) {
	s := server(t)
	tg := s.target(t)
	before, _ := os.ReadFile(s.conf())
	// In range for pg_settings, so the fast path takes it; the check hook
	// (the stack's rlimit) refuses it at reload.
	res, err := apply(t, tg, Options{}, set("max_stack_depth", "1000MB"))
	want := `rolled back: invalid value for parameter "max_stack_depth": 1024000`
	if !errors.Is(err, ErrRolledBack) || !strings.HasPrefix(err.Error(), want) || !res.RolledBack {
		t.Fatalf("got %v\nwant %s...", err, want)
	}
	if after, _ := os.ReadFile(s.conf()); !bytes.Equal(after, before) {
		t.Fatal("the file was not restored")
	}
	if v := s.show(t, "max_stack_depth"); v != "2MB" {
		t.Errorf("max_stack_depth = %s", v)
	}
}

func TestQuickAccept(t *testing.T) {
	work := pgSetting{vartype: "integer", unit: "kB", min: "64", max: "2147483647", context: "user"}
	buffers := pgSetting{vartype: "integer", unit: "8kB", min: "16", max: "1073741823", context: "postmaster"}
	level := pgSetting{vartype: "enum", enumvals: []string{"minimal", "replica", "logical"}, context: "postmaster"}
	cost := pgSetting{vartype: "real", min: "0", max: "1.79769e+308", context: "user"}
	flag := pgSetting{vartype: "bool", context: "user"}
	for _, tc := range []struct {
		s    pgSetting
		v    string
		want bool
	}{
		{work, "8MB", true}, {work, "4096", true}, {work, "1GB", true}, {work, "64kB", true},
		{work, "32kB", false}, {work, "1.5MB", false}, {work, "010", false}, {work, "0x10", false},
		{work, "8mb", false}, {work, "5s", false}, {work, "banana", false}, {work, "3000000000", false},
		{buffers, "128MB", true}, {buffers, "131072kB", true}, {buffers, "12kB", false},
		{level, "Replica", true}, {level, "bogus", false}, {level, "hot_standby", false},
		{cost, "1.5", true}, {cost, "-1", false}, {cost, "1e3", false},
		{flag, "ON", true}, {flag, "maybe", false}, {flag, "o", false},
		{pgSetting{vartype: "string", context: "user"}, "x", false},
	} {
		if got := quickValue(tc.s, tc.v); got != tc.want {
			t.Errorf("quickValue(%s %s, %q) = %v", tc.s.vartype, tc.s.unit, tc.v, got)
		}
	}
}

// The fast path starts only from files the server applies cleanly; a
// postmaster value waiting for a restart is not an error.
func TestClean(t *testing.T) {
	settings := map[string]pgSetting{"shared_buffers": {context: "postmaster", pendingRestart: true}, "work_mem": {context: "user"}}
	pending := fileSetting{name: "shared_buffers", err: "setting could not be applied"}
	for _, tc := range []struct {
		files []fileSetting
		want  bool
	}{
		{[]fileSetting{{name: "work_mem"}}, true},
		{[]fileSetting{pending}, true},
		{[]fileSetting{pending, {name: "work_mem", err: "invalid value"}}, false},
		{[]fileSetting{{name: "max_connections", err: "setting could not be applied"}}, false},
		{[]fileSetting{{err: "syntax error"}}, false},
	} {
		if got := clean(tc.files, settings); got != tc.want {
			t.Errorf("clean(%+v) = %v", tc.files, got)
		}
	}
}

func TestNewSessionsOnly(t *testing.T) {
	s := server(t)
	tg := s.target(t)
	res, err := apply(t, tg, Options{}, set("log_connections", "on"))
	if err != nil {
		t.Fatal(err)
	}
	if e := effects(res)["log_connections"]; e != EffectNewSessions {
		t.Errorf("effect %s", e)
	}
}

func TestStoppedInstanceAndDryRun(t *testing.T) {
	s := server(t)
	tg := s.target(t)
	before, _ := os.ReadFile(s.conf())
	res, err := apply(t, tg, Options{DryRun: true}, set("shared_buffers", "256MB"), set("work_mem", "8MB"))
	if err != nil {
		t.Fatal(err)
	}
	if got := effects(res); got["shared_buffers"] != EffectRestart || got["work_mem"] != EffectReload || res.Reloaded {
		t.Errorf("dry run effects %v", got)
	}
	if after, _ := os.ReadFile(s.conf()); !bytes.Equal(after, before) {
		t.Fatal("dry run wrote the file")
	}
	// The same data directory, described as stopped: classified by
	// postgres --describe-config, written, not reloaded.
	tg.Running = false
	res, err = apply(t, tg, Options{}, set("shared_buffers", "256MB"), set("work_mem", "8MB"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range res.Changes {
		if ch.Effect != EffectNextStart || ch.Context == "" {
			t.Errorf("change %+v", ch)
		}
	}
	if res.Reloaded || s.show(t, "work_mem") != "4MB" {
		t.Error("a stopped instance was reloaded")
	}
}

func TestShowUnknownParameter(t *testing.T) {
	s := server(t)
	tg := s.target(t)
	for _, running := range []bool{true, false} {
		tg.Running = running
		if _, err := Show(context.Background(), tg, []string{"no_such_param"}); err == nil ||
			err.Error() != `unrecognized configuration parameter "no_such_param"` {
			t.Errorf("running %v: %v", running, err)
		}
	}
}

func TestUnreadableIncludeIsRefused(t *testing.T) {
	s := server(t)
	tg := s.target(t)
	dir := filepath.Join(s.data, "conf.d")
	if err := os.Mkdir(dir, 0o700); err != nil { // root's: the server cannot read it
		t.Fatal(err)
	}
	conf, _ := os.ReadFile(s.conf())
	conf = append(conf, "include_dir 'conf.d'\n"...)
	if err := os.WriteFile(s.conf(), conf, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := apply(t, tg, Options{}, set("work_mem", "8MB"))
	want := `could not open configuration directory "` + dir + `": Permission denied`
	if !errors.Is(err, ErrRefused) || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if after, _ := os.ReadFile(s.conf()); !bytes.Equal(after, conf) {
		t.Error("the file changed")
	}
}

func TestCheckHookRejectionWhileRestartPending(t *testing.T) {
	s := server(t)
	tg := s.target(t)
	if _, err := apply(t, tg, Options{}, set("max_connections", "50")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(s.conf())
	// pending_restart is already true for max_connections, so after a
	// reload it could not tell a refused value from a valid one: the value
	// must go through postgres -C before anything is written.
	_, err := apply(t, tg, Options{}, set("max_connections", "262143"))
	if !errors.Is(err, ErrRefused) || err.Error() != `invalid value for parameter "max_connections": 262143` {
		t.Fatalf("got %v", err)
	}
	if after, _ := os.ReadFile(s.conf()); !bytes.Equal(after, before) {
		t.Fatal("the file changed")
	}
}

func TestRefusesAFileTheServerDoesNotRead(t *testing.T) {
	s := server(t)
	tg := s.target(t)
	other := filepath.Join(s.dir, "other.conf")
	if err := os.WriteFile(other, []byte("work_mem = 1MB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tg.ConfigFile = other
	_, err := apply(t, tg, Options{}, set("work_mem", "8MB"))
	if err == nil || !strings.Contains(err.Error(), "reads its configuration from "+s.conf()) {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(other); string(b) != "work_mem = 1MB\n" {
		t.Errorf("other.conf: %q", b)
	}
}
