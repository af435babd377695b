package site

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The reference site.yaml must decode strictly, keep the built-in defaults
// and mention every key, so that it stays the documentation of settings.
func TestReferenceSiteFile(t *testing.T) {
	ref := filepath.Join("..", "..", "site.yaml")
	data, err := os.ReadFile(ref)
	if err != nil {
		t.Fatal(err)
	}
	got := Defaults()
	if _, err := decodeStrict(ref, data, &got); err != nil {
		t.Fatalf("reference site.yaml: %v", err)
	}
	if want := Defaults(); !reflect.DeepEqual(got, want) {
		t.Errorf("reference site.yaml changes defaults:\n got %+v\nwant %+v", got, want)
	}
	flat := map[string]any{}
	flatten("", reflect.ValueOf(got), flat)
	for key := range flat {
		leaf := key[strings.LastIndex(key, ".")+1:]
		if !strings.Contains(string(data), leaf+":") {
			t.Errorf("reference site.yaml does not document %s", key)
		}
	}
}

func TestDecodeErrorsNameFileLineAndKey(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"postgresql:\n  initdb:\n    locale: C\n    colour: red\n", `f.yaml:4: unknown key "postgresql.initdb.colour"`},
		{"postgresql:\n  initdb:\n    data_checksums: sometimes\n", `f.yaml:3: postgresql.initdb.data_checksums: wrong type: cannot unmarshal !!str "sometimes" into bool`},
		{"prefix: [a\n", `f.yaml: line 1: did not find expected ',' or ']'`},
	} {
		s := Defaults()
		_, err := decodeStrict("f.yaml", []byte(c.yaml), &s)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q: got error %v, want prefix %q", c.yaml, err, c.want)
		}
	}
}

func TestQuotaBelowMinimumRefused(t *testing.T) {
	s := Defaults()
	s.Patroni.DCS.Embedded.QuotaBytes = 1 << 20
	err := s.Patroni.validate()
	if want := "patroni.dcs.embedded.quota_bytes: 1048576 is below 8388608 (8 MiB: the history alone may hold 4 MiB): raise it"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestEnvOverridesNestedKeys(t *testing.T) {
	t.Setenv("PGHERD_POSTGRESQL__INITDB__LOCALE", "fr_FR.UTF-8")
	t.Setenv("PGHERD_POSTGRESQL__INITDB__DATA_CHECKSUMS", "false")
	t.Setenv("PGHERD_SERVICE_MANAGER", "process")
	s := Defaults()
	if _, err := applyEnv(&s, flatOf(s)); err != nil {
		t.Fatal(err)
	}
	if s.PostgreSQL.Initdb.Locale != "fr_FR.UTF-8" || s.PostgreSQL.Initdb.DataChecksums || s.ServiceManager != "process" {
		t.Errorf("overrides not applied: %+v", s)
	}
	if got := EnvVar("postgresql.initdb.locale"); got != "PGHERD_POSTGRESQL__INITDB__LOCALE" {
		t.Errorf("EnvVar = %s", got)
	}
}

func TestPathTemplates(t *testing.T) {
	if got := Path("/p", "srv/{version}/{name}/data", "15", "pg1"); got != "/p/srv/15/pg1/data" {
		t.Errorf("relative: %s", got)
	}
	if got := Path("/p", "/abs/{name}", "15", "pg1"); got != "/abs/pg1" {
		t.Errorf("absolute: %s", got)
	}
}

func TestEnvListIsCommaSeparated(t *testing.T) {
	t.Setenv("PGHERD_PATRONI__DCS__HOSTS", "127.0.1.1:2379,127.0.1.2:2379")
	s := Defaults()
	if _, err := applyEnv(&s, flatOf(s)); err != nil {
		t.Fatal(err)
	}
	if got := s.Patroni.DCS.Hosts; len(got) != 2 || got[0] != "127.0.1.1:2379" || got[1] != "127.0.1.2:2379" {
		t.Errorf("hosts = %q", got)
	}
}

func flatOf(s Settings) map[string]any {
	flat := map[string]any{}
	flatten("", reflect.ValueOf(s), flat)
	return flat
}

func TestMistypedVariableIsAnError(t *testing.T) {
	vars := envVars(flatOf(Defaults()))
	for _, c := range []struct {
		env  []string
		want string // "" : accepted
	}{
		{[]string{"PGHERD_POSTGRESQL__PORT=5", "PGHERD_SITE=/x", "PGHERD_TEST_SYSUSER=u", "HOME=/root"}, ""},
		{[]string{"PGHERD_POSTGRESQL__PROT="}, ""}, // empty: unset, as for settings
		{[]string{"PGHERD_POSTGRESQL__PROT=5"}, "PGHERD_POSTGRESQL__PROT is not a setting: did you mean PGHERD_POSTGRESQL__PORT (postgresql.port)?"},
		{[]string{"PGHERD_NOPE=1"}, "PGHERD_NOPE is not a setting: a setting's variable is its site.yaml key in capitals with '__' between levels (postgresql.port is PGHERD_POSTGRESQL__PORT); the other PGHERD_* variables are PGHERD_BENCH_MEMBER_CONFIG, PGHERD_BIN, "},
	} {
		err := checkEnvNames(c.env, vars)
		if (err == nil) != (c.want == "") || err != nil && !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.env, err, c.want)
		}
	}
}

func TestOrigins(t *testing.T) {
	t.Setenv("PGHERD_POSTGRESQL__PORT", "6543")
	dir := t.TempDir()
	file := filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(file, []byte("prefix: "+dir+"\npostgresql:\n  port: 5433\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]Origin{"prefix": FromFile, "postgresql.port": FromEnv, "run_prefix": FromDefault} {
		if got := l.Origins[key]; got != want {
			t.Errorf("origin of %s = %q, want %q", key, got, want)
		}
	}
	if l.PostgreSQL.Port != 6543 {
		t.Errorf("port = %d", l.PostgreSQL.Port)
	}
}

// TestRestartPolicy: restart: decodes from the file and PGHERD_ variables
// into the managers' policy, and nonsense is refused with the rule.
func TestRestartPolicy(t *testing.T) {
	t.Setenv("PGHERD_RESTART__MAX_TRIES", "7")
	s := Defaults()
	if _, err := decodeStrict("f.yaml", []byte("restart:\n  delay: 0.25\n  max_delay: 10\n"), &s); err != nil {
		t.Fatal(err)
	}
	if _, err := applyEnv(&s, flatOf(s)); err != nil {
		t.Fatal(err)
	}
	p := s.Restart.Policy()
	if p.Delay != 250*time.Millisecond || p.MaxDelay != 10*time.Second || p.MaxTries != 7 || p.StableAfter != 30*time.Second {
		t.Errorf("policy %+v", p)
	}
	for _, bad := range []Restart{{Delay: 0.01, MaxDelay: 1, MaxTries: 1}, {Delay: 1, MaxDelay: 0.5, MaxTries: 1}, {Delay: 1, MaxDelay: 1}} {
		s := Defaults()
		s.Restart = bad
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "want delay >= 0.1, max_delay >= delay, max_tries >= 1") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

// patroni.timing gives the three timings; each one the file or a variable
// sets wins over the profile; an unknown profile is refused with the list.
func TestTimingProfile(t *testing.T) {
	dir := t.TempDir()
	load := func(body string) (*Loaded, error) {
		t.Helper()
		file := filepath.Join(dir, "site.yaml")
		if err := os.WriteFile(file, []byte("prefix: "+dir+"\npatroni:\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load(file)
	}
	timings := func(l *Loaded) [3]int { return [3]int{l.Patroni.TTL, l.Patroni.LoopWait, l.Patroni.RetryTimeout} }

	l, err := load("  timing: fast\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := timings(l); got != [3]int{10, 1, 3} {
		t.Errorf("fast: %v, want 10/1/3", got)
	}
	if o := l.Origins["patroni.ttl"]; o != FromTiming {
		t.Errorf("origin of patroni.ttl = %q, want %q", o, FromTiming)
	}

	t.Setenv("PGHERD_PATRONI__RETRY_TIMEOUT", "4")
	if l, err = load("  timing: fast\n  ttl: 12\n"); err != nil {
		t.Fatal(err)
	}
	if got := timings(l); got != [3]int{12, 1, 4} {
		t.Errorf("fast with ttl 12 in the file and retry_timeout 4 in a variable: %v, want 12/1/4", got)
	}
	t.Setenv("PGHERD_PATRONI__RETRY_TIMEOUT", "")

	if l, err = load("  timing: standard\n  loop_wait: 5\n"); err != nil {
		t.Fatal(err)
	}
	if got := timings(l); got != [3]int{30, 5, 10} {
		t.Errorf("standard with loop_wait 5: %v, want 30/5/10", got)
	}
	if l, err = load("  retry_timeout: 4\n"); err != nil {
		t.Fatal(err)
	}
	if got := timings(l); got != [3]int{10, 1, 4} {
		t.Errorf("the default profile (fast) with retry_timeout 4: %v, want 10/1/4", got)
	}

	_, err = load("  timing: quick\n")
	want := filepath.Join(dir, "site.yaml") + `: patroni.timing: timing profile "quick" is unknown: use one of fast, standard`
	if err == nil || err.Error() != want {
		t.Errorf("unknown profile: %v, want %q", err, want)
	}
}

// TestEnvTypes: a variable is read as its setting's type, and a value of
// the wrong type, or a setting no variable can hold, is one clear error.
func TestEnvTypes(t *testing.T) {
	t.Setenv("PGHERD_RESTART__DELAY", "0.5")
	t.Setenv("PGHERD_PATRONI__MAXIMUM_LAG_ON_FAILOVER", "123")
	s := Defaults()
	if _, err := applyEnv(&s, settingsKeys(s)); err != nil {
		t.Fatal(err)
	}
	if s.Restart.Delay != 0.5 || s.Patroni.MaximumLagOnFailover != 123 {
		t.Errorf("delay %v, lag %v", s.Restart.Delay, s.Patroni.MaximumLagOnFailover)
	}
	for env, want := range map[string]string{
		"PGHERD_RESTART__DELAY":                   `PGHERD_RESTART__DELAY="soon": not a number`,
		"PGHERD_PATRONI__SYNCHRONOUS_MODE":        `PGHERD_PATRONI__SYNCHRONOUS_MODE="soon": not a boolean (use true or false)`,
		"PGHERD_PATRONI__MAXIMUM_LAG_ON_FAILOVER": `PGHERD_PATRONI__MAXIMUM_LAG_ON_FAILOVER="soon": not an integer`,
		"PGHERD_PGBACKREST__REPOSITORY__OPTIONS":  "PGHERD_PGBACKREST__REPOSITORY__OPTIONS: pgbackrest.repository.options cannot be set by a variable: set it in the site file",
	} {
		t.Run(env, func(t *testing.T) {
			t.Setenv("PGHERD_RESTART__DELAY", "")
			t.Setenv("PGHERD_PATRONI__MAXIMUM_LAG_ON_FAILOVER", "")
			t.Setenv(env, "soon")
			s := Defaults()
			if _, err := applyEnv(&s, settingsKeys(s)); err == nil || err.Error() != want {
				t.Errorf("got %v, want %q", err, want)
			}
		})
	}
}
