package database

import (
	"strings"
	"testing"
	"time"
)

func TestPlanCreateQuotes(t *testing.T) {
	steps, err := Plan(nil, Spec{Name: `My "DB"`, Owner: "App", Locale: "C", Schemas: []string{"s1"}, Extensions: []string{"hstore"}})
	if err != nil {
		t.Fatal(err)
	}
	var sqls []string
	for _, s := range steps {
		sqls = append(sqls, s.SQL)
	}
	want := `CREATE DATABASE "My ""DB""" OWNER "App" TEMPLATE template0 LOCALE 'C'|CREATE SCHEMA "s1" AUTHORIZATION "App"|CREATE EXTENSION "hstore" CASCADE`
	if got := strings.Join(sqls, "|"); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestPlanConvergedAndRefusals(t *testing.T) {
	cur := &Database{Name: "app", Owner: "app", Encoding: "UTF8", Collate: "C", Ctype: "C", Tablespace: "pg_default", Schemas: []string{"public", "s1"}, Extensions: []string{"plpgsql"}}
	steps, err := Plan(cur, Spec{Name: "app", Owner: "app", Encoding: "utf8", Locale: "C", Schemas: []string{"s1"}, Extensions: []string{"plpgsql"}})
	if err != nil || len(steps) != 0 {
		t.Fatalf("steps %+v, err %v", steps, err)
	}
	if _, err := Plan(cur, Spec{Name: "app", Encoding: "LATIN1"}); err == nil || !strings.Contains(err.Error(), "an encoding cannot change") {
		t.Errorf("encoding change: %v", err)
	}
}

func TestDumpFileRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 6, 13, 0, 0, 0, time.UTC)
	for _, db := range []string{"app", `My "DB"; x@y/z`, "a+b c"} {
		name := dumpFile(db, at)
		if strings.Contains(name, "/") {
			t.Errorf("%q: file name %q holds a slash", db, name)
		}
		got, when, ok := parseDump(name)
		if !ok || got != db || !when.Equal(at) {
			t.Errorf("%q -> %q -> %q %v %v", db, name, got, when, ok)
		}
	}
}

func TestConninfoDB(t *testing.T) {
	if got := conninfoDB(`a'b\c host=x`); got != `dbname='a\'b\\c host=x'` {
		t.Errorf("got %s", got)
	}
}
