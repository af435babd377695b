package site

import (
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
		if err := decodeStrict("f.yaml", []byte(c.yaml), &s); err != nil {
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
		err := decodeStrict("f.yaml", []byte(c.yaml), &s)
		if err == nil {
			err = s.Validate()
		}
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q: got %v, want prefix %q", c.yaml, err, c.want)
		}
	}
}
