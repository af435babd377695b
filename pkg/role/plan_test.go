package role

import (
	"strings"
	"testing"
)

func TestPlanQuotesNamesAndHidesPasswords(t *testing.T) {
	yes := true
	steps, err := Plan(nil, Spec{Name: `a "b"; DROP ROLE x`, Login: &yes, Password: NewSecret("pa'ss"), GrantRoles: []string{"Readers"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 2 {
		t.Fatalf("steps = %+v", steps)
	}
	if !strings.HasPrefix(steps[0].SQL, `CREATE ROLE "a ""b""; DROP ROLE x" WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:`) {
		t.Errorf("create SQL = %s", steps[0].SQL)
	}
	if steps[1].SQL != `GRANT "Readers" TO "a ""b""; DROP ROLE x"` {
		t.Errorf("grant SQL = %s", steps[1].SQL)
	}
	for _, s := range steps {
		if strings.Contains(s.SQL, "pa'ss") || strings.Contains(s.SQL, "pa''ss") || strings.Contains(s.Desc, "pa'ss") {
			t.Errorf("password in step %+v", s)
		}
	}
}

func TestPlanNothingWhenConverged(t *testing.T) {
	v, err := Verifier("secret")
	if err != nil {
		t.Fatal(err)
	}
	valid := "2099-01-01T00:00:00Z"
	cur := &Role{Name: "app", Login: true, ConnectionLimit: 3, ValidUntil: &valid, InRoles: []string{"r1"}, verifier: v}
	yes, limit := true, 3
	in := []string{"r1"}
	steps, err := Plan(cur, Spec{Name: "app", Login: &yes, ConnectionLimit: &limit, ValidUntil: "2099-01-01", Password: NewSecret("secret"), InRoles: &in})
	if err != nil || len(steps) != 0 {
		t.Fatalf("steps = %+v, err = %v", steps, err)
	}
	in = []string{"r2"}
	steps, _ = Plan(cur, Spec{Name: "app", Password: NewSecret("other"), InRoles: &in})
	var got []string
	for _, s := range steps {
		got = append(got, s.Desc)
	}
	want := "alter role app: password|grant role r2 to app|revoke role r1 from app"
	if strings.Join(got, "|") != want {
		t.Errorf("got %q, want %q", strings.Join(got, "|"), want)
	}
}

func TestVerifierMatches(t *testing.T) {
	v, _ := Verifier("secret")
	if !VerifierMatches(v, "secret") || VerifierMatches(v, "Secret") || VerifierMatches("md5abc", "secret") || VerifierMatches("", "") {
		t.Error("VerifierMatches answers wrong")
	}
}

func TestCheckName(t *testing.T) {
	for _, bad := range []string{"", "a\x00b", strings.Repeat("x", 64)} {
		if CheckName("role", bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := CheckName("role", `Bob "the" Builder`); err != nil {
		t.Error(err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := NewSecret("hunter2")
	for _, out := range []string{s.String(), func() string { b, _ := s.MarshalJSON(); return string(b) }()} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret printed: %s", out)
		}
	}
}
