package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/pgherd/pgherd/pkg/iostreams"
)

// TestUnknownCommandsAreUsageErrors: a mistyped subcommand exits 2 with one
// line and a suggestion, never help with exit code 0.
func TestUnknownCommandsAreUsageErrors(t *testing.T) {
	for _, c := range []struct{ args, want string }{
		{"instance lst", `Error: unknown command "lst" for "pgherd instance"; did you mean get or list?` + "\n"},
		{"pgconf -i pg1 shwo", `Error: unknown command "shwo" for "pgherd pgconf"; did you mean show?` + "\n"},
		{"witness chek", `Error: unknown command "chek" for "pgherd witness"; did you mean check?` + "\n"},
		{"nosuch", `Error: unknown command "nosuch" for "pgherd"; see 'pgherd --help'` + "\n"},
		{"dcs status a b", "Error: pgherd dcs status expects at most one member NAME (got 2 arguments); see pgherd dcs status --help\n"},
		{"instance exec pg1 psql -Atc x", "Error: unknown shorthand flag: 'A' in -Atc: put '--' before the command: pgherd instance exec NAME -- COMMAND [ARG...]\n"},
	} {
		ios, _, out, errOut := iostreams.Test()
		if code := Main(context.Background(), ios, strings.Fields(c.args)); code != ExitUsage || errOut.String() != c.want || out.Len() != 0 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 and %q", c.args, code, out, errOut, c.want)
		}
	}
	ios, _, out, _ := iostreams.Test()
	if code := Main(context.Background(), ios, []string{"instance"}); code != ExitOK || !strings.Contains(out.String(), "Available Commands:") {
		t.Errorf("a group without a subcommand: exit %d, %q", code, out)
	}
}
