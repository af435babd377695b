package instance

import (
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
