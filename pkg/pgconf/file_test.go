package pgconf

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pgherd/pgherd/pkg/run"
)

// memConfig builds a Config from in-memory files; main is "/conf/postgresql.conf".
func memConfig(t testing.TB, files map[string]string) *Config {
	t.Helper()
	c := &Config{
		Main: "/conf/postgresql.conf", AutoConf: "/data/postgresql.auto.conf",
		readFile: func(p string) ([]byte, error) {
			if s, ok := files[p]; ok {
				return []byte(s), nil
			}
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		},
		readDir: func(p string) ([]fs.DirEntry, error) {
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		},
		files: map[string]*File{}, original: map[string][]byte{},
	}
	if err := c.read(c.Main, false); err != nil {
		t.Fatal(err)
	}
	if err := c.read(c.AutoConf, true); err != nil {
		t.Fatal(err)
	}
	c.resolve()
	return c
}

// lineCases are lines and what PostgreSQL 15 reads in them;
// TestSyntaxAgreesWithPostgres checks the verdicts against the server.
var lineCases = []struct{ line, name, value, err string }{
	{line: "work_mem = 4MB", name: "work_mem", value: "4MB"},
	{line: "work_mem 4MB", name: "work_mem", value: "4MB"},
	{line: "work_mem=4MB#c", name: "work_mem", value: "4MB"},
	{line: "  Work_Mem\t=\t'4MB'  # min 64kB\r", name: "Work_Mem", value: "4MB"},
	{line: `search_path = '"$user", public'`, name: "search_path", value: `"$user", public`},
	{line: `x.y = 'it''s'`, name: "x.y", value: "it's"},
	{line: `x.y = 'a\'b\\c\td\101'`, name: "x.y", value: "a'b\\c\tdA"},
	{line: `x.y = 'a\0b'`, name: "x.y", value: "a"},
	{line: "lc_messages = C.UTF-8", name: "lc_messages", value: "C.UTF-8"},
	{line: "random_page_cost = -.5e3", name: "random_page_cost", value: "-.5e3"},
	{line: "work_mem = 0xZZ", name: "work_mem", value: "0xZZ"},
	// The same verdicts as PostgreSQL 15 (TestSyntaxAgreesWithPostgres checks them against it).
	{line: "default_text_search_config = pg_catalog.english", err: `near token "pg_catalog.english"`},
	{line: "work_mem = 0X10", err: `near token "10"`},
	{line: "a.b.c = 1", err: `near token "a.b.c"`},
	{line: `search_path = '\'`, err: `near token "'"`},
	{line: "work_mem=", err: "near end of line"},
	{line: "x.y = /x", err: `near token "/"`},
	{line: "x.y = 1-2", err: `near token "-2"`},
	{line: "work_mem = 1.5MB", err: `near token "MB"`},
	{line: "work_mem = 8MB extra", err: `near token "extra"`},
	{line: "wal_level = replica;", err: `near token ";"`},
	{line: `"work_mem" = 1`, err: `near token """`},
}

func TestParseLines(t *testing.T) {
	for _, tc := range lineCases {
		l := parseLine(tc.line)
		if l.syntaxErr != tc.err || l.name != tc.name && tc.err == "" || l.value != tc.value {
			t.Errorf("%q: got name %q value %q err %q, want %q %q %q", tc.line, l.name, l.value, l.syntaxErr, tc.name, tc.value, tc.err)
		}
	}
}

func TestFormatKeepsBytes(t *testing.T) {
	for _, s := range []string{"", "\n", "a = 1", "a = 1\n\n# c\n", "#x\r\nbad line ;\nb 'q''q'"} {
		if got := string(Parse("f", []byte(s)).Bytes()); got != s {
			t.Errorf("Parse(%q).Bytes() = %q", s, got)
		}
	}
}

func TestRenderValue(t *testing.T) {
	for v, want := range map[string]string{
		"8MB": "8MB", "on": "on", "-1": "-1", "0.5": "0.5", "": "''", "1.5MB": "'1.5MB'",
		"pg_catalog.english": "'pg_catalog.english'", "it's": "'it''s'", `a\b`: `'a\\b'`,
		"%m [%p] ": "'%m [%p] '", "a\nb": `'a\nb'`,
	} {
		if got := renderValue(v, false); got != want {
			t.Errorf("renderValue(%q) = %s, want %s", v, got, want)
		}
	}
}

func TestSetReplacesActiveLineAndCommentsDuplicates(t *testing.T) {
	c := memConfig(t, map[string]string{
		"/conf/postgresql.conf": "work_mem = 1MB\ninclude 'extra.conf'\nWORK_MEM = '2MB'   # tuned\n",
		"/conf/extra.conf":      "work_mem = 3MB\n",
	})
	commented, err := c.Set("work_mem", "8MB")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(c.files[c.Main].Bytes()); got != "#work_mem = 1MB\ninclude 'extra.conf'\nWORK_MEM = '8MB'   # tuned\n" {
		t.Errorf("main file:\n%s", got)
	}
	if got := string(c.files["/conf/extra.conf"].Bytes()); got != "#work_mem = 3MB\n" {
		t.Errorf("extra.conf: %q", got)
	}
	if len(commented) != 2 || commented[0].Line != 1 || commented[1].File != "/conf/extra.conf" {
		t.Errorf("commented = %+v", commented)
	}
	if e, _ := c.Lookup("work_mem"); e == nil || e.Value != "8MB" || e.Line != 3 {
		t.Errorf("Lookup = %+v", e)
	}
	if n := len(c.Changed()); n != 2 {
		t.Errorf("%d files changed, want 2", n)
	}
}

func TestSetInIncludedFile(t *testing.T) {
	c := memConfig(t, map[string]string{
		"/conf/postgresql.conf": "include_if_exists 'none.conf'\ninclude '/etc/x.conf'\n",
		"/etc/x.conf":           "shared_buffers = 128MB",
	})
	if _, err := c.Set("shared_buffers", "256MB"); err != nil {
		t.Fatal(err)
	}
	ch := c.Changed()
	if len(ch) != 1 || ch[0].Path != "/etc/x.conf" || string(ch[0].New) != "shared_buffers = 256MB" {
		t.Errorf("changed = %+v", ch)
	}
}

func TestSetUncommentsOrAppends(t *testing.T) {
	c := memConfig(t, map[string]string{
		"/conf/postgresql.conf": "#work_mem = 4MB\t\t# min 64kB\n#shared_preload_libraries = ''\t# restart\nport = 5432",
	})
	for name, value := range map[string]string{"work_mem": "8MB", "shared_preload_libraries": "pg_stat_statements", "max_connections": "50"} {
		if _, err := c.Set(name, value); err != nil {
			t.Fatal(err)
		}
	}
	want := "work_mem = 8MB\t\t# min 64kB\nshared_preload_libraries = 'pg_stat_statements'\t# restart\nport = 5432\nmax_connections = 50\n"
	if got := string(c.files[c.Main].Bytes()); got != want {
		t.Errorf("got:\n%q\nwant:\n%q", got, want)
	}
}

func TestRemoveCommentsOutEveryAssignment(t *testing.T) {
	c := memConfig(t, map[string]string{
		"/conf/postgresql.conf":      "work_mem = 1MB\nwork_mem = 2MB\n",
		"/data/postgresql.auto.conf": "work_mem = '3MB'\n",
	})
	removed, err := c.Remove("work_mem")
	if err != nil || len(removed) != 2 {
		t.Fatalf("Remove = %v, %v", removed, err)
	}
	conf, auto := c.Lookup("work_mem")
	if conf != nil || auto == nil || auto.Value != "3MB" {
		t.Errorf("Lookup = %+v, %+v", conf, auto)
	}
	if got := string(c.files[c.Main].Bytes()); got != "#work_mem = 1MB\n#work_mem = 2MB\n" {
		t.Errorf("got %q", got)
	}
}

func TestIncludeErrorsAreReported(t *testing.T) {
	c := memConfig(t, map[string]string{
		"/conf/postgresql.conf": "include 'missing.conf'\ninclude 'postgresql.conf'\nwork_mem = 1.5MB\n",
	})
	var msgs []string
	for _, e := range c.Errors() {
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{
		`could not open configuration file "/conf/missing.conf": file does not exist`,
		`": maximum nesting depth exceeded`,
		`syntax error in file "/conf/postgresql.conf" line 3, near token "MB"`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("errors lack %q:\n%s", want, all)
		}
	}
	if len(msgs) != 3 {
		t.Errorf("%d errors, want each of the 3 once", len(msgs))
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"work_mem", "pg_stat_statements.max", "TimeZone"} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b.c", "work mem", "1x", "include_dir", "x=1"} {
		if err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) accepted", bad)
		}
	}
}

func TestSyntaxAgreesWithPostgres(t *testing.T) {
	s := server(t)
	dir, err := os.MkdirTemp("/tmp", "pgconf-lines-") // the server's user must reach it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, tc := range lineCases {
		path := filepath.Join(dir, fmt.Sprintf("case%d.conf", n))
		if err := os.WriteFile(path, []byte(tc.line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := s.runner.Run(context.Background(), run.Cmd{Args: []string{pgBin + "/postgres", "-D", s.data,
			"-c", "config_file=" + path, "-c", "log_line_prefix=", "-C", "work_mem"}})
		if err == nil && tc.err != "" || strings.Contains(res.Stderr, "could not open") {
			t.Fatalf("%q: %v %s", tc.line, err, res.Stderr)
		}
		var server string
		if m := regexp.MustCompile(`syntax error in file .* line 1, (near .*)`).FindStringSubmatch(res.Stderr); m != nil {
			server = m[1]
		}
		if server != tc.err {
			t.Errorf("%q: PostgreSQL says %q, the table %q", tc.line, server, tc.err)
		}
		if errs := Parse(path, []byte(tc.line+"\n")).SyntaxErrors(); len(errs) > 0 != (server != "") ||
			len(errs) > 0 && !strings.HasSuffix(errs[0].Msg, server) {
			t.Errorf("%q: PostgreSQL says %q, we say %v", tc.line, server, errs)
		}
	}
}
