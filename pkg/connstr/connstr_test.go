package connstr

import "testing"

func TestURI(t *testing.T) {
	u := URI{Hosts: []Host{{"10.0.0.1", 5432}, {"db2", 5433}, {"::1", 5434}}, User: "app", Database: "my db", TargetSessionAttrs: "read-write"}
	if got, want := u.String(), "postgresql://app@10.0.0.1:5432,db2:5433,[::1]:5434/my%20db?target_session_attrs=read-write"; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	u.Password = "p@ss:w/rd"
	if got, want := u.String(), "postgresql://app:p%40ss%3Aw%2Frd@10.0.0.1:5432,db2:5433,[::1]:5434/my%20db?target_session_attrs=read-write"; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	s := URI{Hosts: []Host{{"/run/pg", 5432}}, Database: "postgres"}
	if got, want := s.String(), "postgresql:///postgres?host=%2Frun%2Fpg&port=5432"; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestPgpassLookup(t *testing.T) {
	text := "*:5433:*:app:x\n*:5432:*:a\\:b:p\\:w\\\\\n*:*:*:postgres:su\n"
	for _, c := range []struct {
		port       int
		user, want string
		ok         bool
	}{{5432, "a:b", `p:w\`, true}, {5433, "app", "x", true}, {5432, "app", "", false}, {1, "postgres", "su", true}} {
		got, ok := PgpassLookup(text, c.port, c.user)
		if got != c.want || ok != c.ok {
			t.Errorf("%d %s: got %q %v", c.port, c.user, got, ok)
		}
	}
}

func TestListenHost(t *testing.T) {
	for _, c := range [][4]string{{"localhost", "/s", "h", "localhost"}, {"*", "/s", "h", "h"}, {"", "/s", "h", "/s"}, {"10.0.0.1, 10.0.0.2", "/s", "h", "10.0.0.1"}} {
		if got := ListenHost(c[0], c[1], c[2]); got != c[3] {
			t.Errorf("%q: got %s", c[0], got)
		}
	}
}
