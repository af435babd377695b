package instance

import (
	"strings"
	"testing"

	"github.com/pgherd/pgherd/pkg/site"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"pg1", "main", "A-1_b", strings.Repeat("x", 32)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "../x", "A B", "-x", "_x", "x/y", strings.Repeat("x", 33), "é"} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseConfLine(t *testing.T) {
	for _, c := range []struct{ line, name, value string }{
		{"port = 5433", "port", "5433"},
		{"port=5433 # comment", "port", "5433"},
		{"  work_mem 4MB", "work_mem", "4MB"},
		{`log_line_prefix = '%m [%p] ''q'' \\x' # c`, "log_line_prefix", `%m [%p] 'q' \x`},
		{"search_path = '\"$user\", public'", "search_path", `"$user", public`},
	} {
		n, v, ok := parseConfLine(c.line)
		if !ok || n != c.name || v != c.value {
			t.Errorf("%q: got %q %q %v", c.line, n, v, ok)
		}
	}
	for _, skip := range []string{"", "# port = 1", "   "} {
		if _, _, ok := parseConfLine(skip); ok {
			t.Errorf("%q parsed as a setting", skip)
		}
	}
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
