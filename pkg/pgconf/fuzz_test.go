package pgconf

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseFormat checks that formatting gives back the parsed bytes, that
// every value survives rendering and re-parsing, and that Set and Remove
// do what they promise on any file: the value becomes (or stops being)
// effective, no other parameter changes, and no new syntax error appears.
func FuzzParseFormat(f *testing.F) {
	seeds := []string{
		"work_mem = 4MB\n",
		"#work_mem = 4MB\t\t# min 64kB\nwork_mem 1MB\nwork_mem='2MB' # x\n",
		"search_path = '\"$user\", public'\nx.y = 'it''s \\'q\\' \\101\\n'\n",
		"lc_messages = C.UTF-8\r\nrandom_page_cost = -.5e3\nbad = 1.5MB\n",
		"a.b.c = 1\n= 2\nwork_mem=\n'x' = 1\ninclude 'other.conf'\n",
		"no final newline = 1",
	}
	if sample, err := os.ReadFile("/usr/share/postgresql/15/postgresql.conf.sample"); err == nil {
		seeds = append(seeds, string(sample))
	}
	for _, s := range seeds {
		f.Add([]byte(s), "work_mem", "8MB")
	}
	f.Add([]byte("x.y = 1\n"), "X.Y", "it's a \\ test\n")
	f.Fuzz(func(t *testing.T, data []byte, name, value string) {
		file := Parse("/conf/postgresql.conf", data)
		if !bytes.Equal(file.Bytes(), data) {
			t.Fatalf("format changed the bytes:\n%q\n%q", data, file.Bytes())
		}
		for _, e := range file.Entries() {
			l := parseLine("n = " + renderValue(e.Value, false))
			if !l.assignment || l.value != e.Value {
				t.Fatalf("value %q does not survive rendering: %q", e.Value, l.text)
			}
		}
		if CheckName(name) != nil || checkValue(name, value) != nil || strings.ContainsAny(string(data), "\x00") {
			return
		}
		files := map[string]string{"/conf/postgresql.conf": string(data)}
		c := memConfig(t, files)
		before := effective(c)
		nerr := len(c.Errors())
		if _, err := c.Set(name, value); err != nil {
			t.Fatal(err)
		}
		after := reparsed(t, c)
		if e, _ := after.Lookup(name); e == nil || e.Value != value {
			t.Fatalf("after Set(%q, %q) the effective entry is %+v\n%s", name, value, e, after.files[after.Main].Bytes())
		}
		assertOthersKept(t, before, effective(after), name)
		if len(after.Errors()) > nerr {
			t.Fatalf("Set added errors: %v", after.Errors())
		}
		if _, err := after.Remove(name); err != nil {
			t.Fatal(err)
		}
		removed := reparsed(t, after)
		if e, _ := removed.Lookup(name); e != nil {
			t.Fatalf("after Remove(%q) it is still set: %+v", name, e)
		}
		assertOthersKept(t, before, effective(removed), name)
	})
}

func reparsed(t *testing.T, c *Config) *Config {
	files := map[string]string{}
	for p, f := range c.files {
		if f != nil {
			files[p] = string(f.Bytes())
		}
	}
	return memConfig(t, files)
}

func effective(c *Config) map[string]string {
	m := map[string]string{}
	for _, e := range c.Entries() {
		m[normName(e.Name)] = e.Value
	}
	return m
}

func assertOthersKept(t *testing.T, before, after map[string]string, name string) {
	t.Helper()
	for k, v := range before {
		if k != normName(name) && after[k] != v {
			t.Fatalf("%s changed from %q to %q", k, v, after[k])
		}
	}
}

// TestSampleFileRoundTrip checks the sample files PostgreSQL installs: same
// bytes back, and no line our lexer would refuse.
func TestSampleFileRoundTrip(t *testing.T) {
	matches, _ := filepath.Glob("/usr/share/postgresql/*/postgresql.conf.sample")
	for _, m := range matches {
		data, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		f := Parse(m, data)
		if !bytes.Equal(f.Bytes(), data) {
			t.Errorf("%s: round trip changed bytes", m)
		}
		if errs := f.SyntaxErrors(); len(errs) > 0 {
			t.Errorf("%s: %v", m, errs[0])
		}
	}
}
