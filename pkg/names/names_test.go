package names

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	if !strings.Contains(Rule, fmt.Sprint(Max)) {
		t.Errorf("Rule %q does not say Max (%d)", Rule, Max)
	}
	for _, ok := range []string{"pg1", "A-1_b", "main_c", "0", strings.Repeat("a", Max)} {
		if err := Check("instance", ok); err != nil {
			t.Errorf("Check(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "../x", "a/b", ".x", "a.b", "-a", "_a", "A B", "é", strings.Repeat("a", Max+1)} {
		want := fmt.Sprintf("invalid cluster name %q: %s", bad, Rule)
		if err := Check("cluster", bad); err == nil || err.Error() != want {
			t.Errorf("Check(%q) = %v, want %s", bad, err, want)
		}
	}
}

// FuzzValid: the hand-written check accepts exactly what Pattern matches.
func FuzzValid(f *testing.F) {
	re := regexp.MustCompile(`^` + Pattern + `$`)
	for _, s := range []string{"", "pg1", "A-1_b", "-a", "_a", "a.b", "a/b", "é", "a b", "0", "a-", "Z_"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Valid(s), re.MatchString(s); got != want {
			t.Errorf("Valid(%q) = %v, Pattern says %v", s, got, want)
		}
	})
}
