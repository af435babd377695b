package cli

import (
	"strings"
	"testing"

	"github.com/pgherd/pgherd/pkg/iostreams"
)

func TestWriteTablePlainWhenPiped(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	if err := writeTable(ios, []string{"name", "port"}, [][]string{{"pg1", "5432"}, {"longer-name", "5433"}}); err != nil {
		t.Fatal(err)
	}
	want := "name         port\npg1          5432\nlonger-name  5433\n"
	if out.String() != want {
		t.Errorf("got\n%q\nwant\n%q", out.String(), want)
	}
}

func TestWriteTableStyledOnTerminal(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	ios.SetTTY(true)
	if err := writeTable(ios, []string{"name"}, [][]string{{"pg1"}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "│") || !strings.Contains(out.String(), "pg1") {
		t.Errorf("no bordered table on a terminal:\n%s", out.String())
	}
}

func TestWriteDataYAMLFollowsJSONNames(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	v := struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Port    int    `json:"port"`
	}{"pg1", "15", 5432}
	if err := writeData(ios.Out, "yaml", v); err != nil {
		t.Fatal(err)
	}
	if want := "name: pg1\nversion: \"15\"\nport: 5432\n"; out.String() != want {
		t.Errorf("got %q want %q", out.String(), want)
	}
}

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"instance", "get"}, ExitUsage, "expects one instance NAME"},
		{[]string{"--log-level", "loud", "site", "show"}, ExitUsage, `unknown log level "loud"`},
		{[]string{"instance", "list", "--bogus"}, ExitUsage, "unknown flag: --bogus"},
		{[]string{"site", "show", "-o", "toml"}, ExitUsage, `unknown output format "toml"`},
	} {
		ios, _, _, errOut := iostreams.Test()
		if code := Main(t.Context(), ios, c.args); code != c.code || !strings.Contains(errOut.String(), c.err) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errOut.String(), c.code, c.err)
		}
	}
}

func TestWriteDataNeverNullArrays(t *testing.T) {
	type inner struct {
		List []string `json:"list"`
	}
	type outer struct {
		Changes []inner           `json:"changes"`
		Nested  *inner            `json:"nested"`
		Items   []inner           `json:"items"`
		Map     map[string]string `json:"map"`
		Absent  *inner            `json:"absent"`
	}
	var b strings.Builder
	v := outer{Nested: &inner{}, Items: []inner{{}}}
	if err := writeData(&b, "json", v); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(strings.Fields(b.String()), " ")
	want := `{ "changes": [], "nested": { "list": [] }, "items": [ { "list": [] } ], "map": {}, "absent": null }`
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if v.Changes != nil {
		t.Error("the caller's value changed")
	}
}
