package site

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPgBackRestSection(t *testing.T) {
	for _, c := range []struct{ yaml, path string }{
		{"prefix: /p\n", ""},
		{"pgbackrest:\n", "srv/pgbackrest"},
		{"pgbackrest: {}\n", "srv/pgbackrest"},
		{"pgbackrest:\n  repository:\n    path: /backups\n", "/backups"},
	} {
		s := Defaults()
		if _, err := decodeStrict("f.yaml", []byte(c.yaml), &s); err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if c.path == "" {
			if s.PgBackRest != nil {
				t.Errorf("%q: pgBackRest is on", c.yaml)
			}
			continue
		}
		if s.PgBackRest == nil || s.PgBackRest.Repository.Path != c.path || s.PgBackRest.Execpath != "/usr/bin/pgbackrest" {
			t.Errorf("%q: got %+v", c.yaml, s.PgBackRest)
		}
	}
}

func TestPgBackRestRefusals(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"pgbackrest:\n  repo: x\n", `f.yaml:2: unknown key "pgbackrest.repo"`},
		{"pgbackrest:\n  repository:\n    options:\n      pg1-path: /x\n", "pgbackrest.repository.options: pg1-path is set by pgherd"},
		{"pgbackrest:\n  repository:\n    options:\n      Repo1_Type: s3\n", `pgbackrest.repository.options: "Repo1_Type" is not a pgBackRest option name`},
		{"pgbackrest:\n  configpath: etc/x.conf\n", `pgbackrest.configpath: "etc/x.conf" must contain {version} and {name}`},
	} {
		s := Defaults()
		_, err := decodeStrict("f.yaml", []byte(c.yaml), &s)
		if err == nil {
			err = s.Validate()
		}
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q: got %v, want prefix %q", c.yaml, err, c.want)
		}
	}
}

// PGHERD_PGBACKREST__* variables reach the section, and turn it on.
func TestPgBackRestEnv(t *testing.T) {
	t.Setenv("PGHERD_POSTGRESQL__PORT", "5433")
	s := Defaults()
	if _, err := applyEnv(&s, settingsKeys(s)); err != nil {
		t.Fatal(err)
	}
	if s.PgBackRest != nil {
		t.Errorf("another variable turned pgBackRest on: %+v", s.PgBackRest)
	}
	t.Setenv("PGHERD_PGBACKREST__REPOSITORY__PATH", "/backups")
	s = Defaults()
	if _, err := applyEnv(&s, settingsKeys(s)); err != nil {
		t.Fatal(err)
	}
	if s.PgBackRest == nil || s.PgBackRest.Repository.Path != "/backups" || s.PgBackRest.Execpath != "/usr/bin/pgbackrest" || s.PostgreSQL.Port != 5433 {
		t.Errorf("got %+v", s.PgBackRest)
	}
}

// A variable for another key keeps the file's section as it is.
func TestPgBackRestEnvKeepsFile(t *testing.T) {
	t.Setenv("PGHERD_POSTGRESQL__PORT", "5433")
	s := Defaults()
	if _, err := decodeStrict("f.yaml", []byte("pgbackrest:\n  repository:\n    path: /b\n    options:\n      repo1-retention-full: \"2\"\n"), &s); err != nil {
		t.Fatal(err)
	}
	if _, err := applyEnv(&s, settingsKeys(s)); err != nil {
		t.Fatal(err)
	}
	if s.PgBackRest == nil || s.PgBackRest.Repository.Path != "/b" || s.PgBackRest.Repository.Options["repo1-retention-full"] != "2" {
		t.Errorf("got %+v", s.PgBackRest)
	}
}

// TestRepoOptionsMaskSecrets: site show and -o json never print a
// repository secret, and the value pgherd writes for pgBackRest is intact.
func TestRepoOptionsMaskSecrets(t *testing.T) {
	o := RepoOptions{"repo1-s3-key-secret": "SECRET", "repo1-cipher-pass": "PASS", "repo1-s3-key": "KEYID", "repo1-s3-bucket": "b"}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"SECRET", "PASS", "KEYID"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("%s shown: %s", secret, b)
		}
	}
	if !strings.Contains(string(b), `"repo1-s3-bucket":"b"`) || o["repo1-s3-key-secret"] != "SECRET" {
		t.Errorf("%s / %v", b, o)
	}
}
