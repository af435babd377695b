package instance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgherd/pgherd/pkg/site"
)

func TestQuote(t *testing.T) {
	if q := quote(`it's \ here`); q != `'it''s \\ here'` {
		t.Errorf("quote: %s", q)
	}
}

func TestHBAAndIdent(t *testing.T) {
	h := hba(CreateRequest{AuthLocal: "peer", AuthHost: "scram-sha-256"})
	for _, want := range []string{
		"local   all          all                 peer map=pgherd",
		"host    replication  all   127.0.0.1/32  scram-sha-256",
	} {
		if !strings.Contains(h, want) {
			t.Errorf("pg_hba lacks %q:\n%s", want, h)
		}
	}
	env := &Env{Site: &site.Settings{PostgreSQL: site.PostgreSQL{Surole: site.Role{Name: "postgres"}}}, User: site.SysUser{Name: "pgherd"}}
	id := ident(env)
	for _, want := range []string{"pgherd     root             postgres", "pgherd     pgherd           postgres", `pgherd     /^(.*)$          \1`} {
		if !strings.Contains(id, want) {
			t.Errorf("pg_ident lacks %q:\n%s", want, id)
		}
	}
}

// TestScanByName: looking for one name reads only that name's data
// directories, in every version, and never another instance whose name
// starts the same.
func TestScanByName(t *testing.T) {
	s := site.Defaults()
	s.Prefix = t.TempDir()
	for _, id := range []string{"16/pg1", "15/pg1", "15/pg2", "15/pg1x", "15/notdata"} {
		dir := site.Path(s.Prefix, s.PostgreSQL.Datadir, strings.Split(id, "/")[0], strings.Split(id, "/")[1])
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if id != "15/notdata" {
			if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	env := &Env{Site: &s}
	for name, want := range map[string]string{"pg1": "15/pg1 16/pg1", "": "15/pg1 15/pg1x 15/pg2 16/pg1", "pg3": "", "notdata": ""} {
		got, err := scan(env, name)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, i := range got {
			ids = append(ids, i.ID())
		}
		if strings.Join(ids, " ") != want {
			t.Errorf("scan %q: %q, want %q", name, ids, want)
		}
	}
}
