package cli

import "testing"

func TestVersionString(t *testing.T) {
	for _, c := range []struct {
		v, c  string
		dirty bool
		want  string
	}{
		{"v0.1.0", "0123456789abcdef", false, "v0.1.0 (commit 0123456789ab, go1.26)"},
		{"(devel)", "0123456789abcdef", true, "devel (commit 0123456789ab+dirty, go1.26)"},
		{"", "", false, "devel (commit unknown, go1.26)"},
	} {
		if got := versionString(c.v, c.c, c.dirty, "go1.26"); got != c.want {
			t.Errorf("versionString(%q, %q, %v) = %q, want %q", c.v, c.c, c.dirty, got, c.want)
		}
	}
}
