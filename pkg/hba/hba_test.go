package hba

import (
	"net"
	"strings"
	"testing"
)

const sample = `# TYPE  DATABASE  USER  ADDRESS  METHOD

local   all       postgres          peer map=pgherd   # pgherd
host    "my db",app  "Bob",+ops  10.0.0.0  255.0.0.0  md5
host    replication  repl   192.168.0.0/16  scram-sha-256
`

func TestParseKeepsTextAndReadsEntries(t *testing.T) {
	f, err := Parse(sample)
	if err != nil {
		t.Fatal(err)
	}
	if f.String() != sample {
		t.Errorf("text changed:\n%s", f.String())
	}
	es := f.Entries()
	if len(es) != 3 {
		t.Fatalf("entries %+v", es)
	}
	if e := es[1]; e.Database != `"my db",app` || e.User != `"Bob",+ops` || e.Address != "10.0.0.0 255.0.0.0" || e.Method != "md5" || e.Line != 4 {
		t.Errorf("entry %+v", e)
	}
	if e := es[0]; e.Options != "map=pgherd" || e.Line != 3 {
		t.Errorf("entry %+v", e)
	}
	if _, err := Parse("host all all\n"); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("short line: %v", err)
	}
}

func TestAddRemoveKeepComments(t *testing.T) {
	f, _ := Parse(sample)
	e := Entry{Type: "host", Database: "all", User: "x", Address: "10.1.0.0/16", Method: "trust"}
	if !f.Add(e, true) || f.Add(e, false) {
		t.Fatal("add")
	}
	if got := f.Entries()[0]; got.User != "x" || got.Line != 3 {
		t.Errorf("first entry %+v", got)
	}
	if n := f.Remove(Entry{Type: "host", Database: "all", User: "x", Address: "10.1.0.0/16"}); n != 1 {
		t.Fatalf("removed %d", n)
	}
	if f.String() != sample {
		t.Errorf("not back to the sample:\n%s", f.String())
	}
}

func TestFirstMatch(t *testing.T) {
	f, _ := Parse(sample)
	for _, c := range []struct {
		p    Probe
		line int
	}{
		{Probe{Local: true, Database: "postgres", User: "postgres"}, 3},
		{Probe{Local: true, Database: "postgres", User: "other"}, 0},
		{Probe{Address: net.ParseIP("10.2.3.4"), Database: "my db", User: "Bob"}, 4},
		{Probe{Address: net.ParseIP("10.2.3.4"), Database: "my db", User: "bob"}, 4}, // +ops cannot be decided: a match
		{Probe{Address: net.ParseIP("10.2.3.4"), Database: "My db", User: "Bob"}, 0}, // "my db" quoted: case kept
		{Probe{Address: net.ParseIP("11.2.3.4"), Database: "app", User: "Bob"}, 0},
		{Probe{Address: net.ParseIP("192.168.1.1"), Database: "replication", User: "repl"}, 5},
		{Probe{Address: net.ParseIP("192.168.1.1"), Database: "postgres", User: "repl"}, 0},
	} {
		got := 0
		if e := f.FirstMatch(c.p); e != nil {
			got = e.Line
		}
		if got != c.line {
			t.Errorf("%+v matched line %d, want %d", c.p, got, c.line)
		}
	}
}

func TestCheckAndQuote(t *testing.T) {
	for _, bad := range []Entry{
		{Type: "host", Database: "all", User: "all", Address: "10.0.0.1", Method: "md5"},
		{Type: "host", Database: "all", User: "all", Address: "10.0.0.0/8", Method: "scram"},
		{Type: "local", Database: "all", User: "all", Address: "10.0.0.0/8", Method: "md5"},
		{Type: "host", Database: "all", User: "all", Method: "md5"},
	} {
		if Check(bad) == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if got := QuoteNames([]string{"all", "My DB", `a"b`, "app", "+ops"}); got != `all,"My DB","a""b",app,+ops` {
		t.Errorf("QuoteNames = %s", got)
	}
}
