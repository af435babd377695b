package cli

import (
	"context"
	"testing"

	"github.com/pgherd/pgherd/pkg/iostreams"
	"github.com/pgherd/pgherd/pkg/pgconf"
)

// Bad arguments are refused before anything is read, with exit code 2 and
// one line saying what to do.
func TestPgconfArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pgconf", "show"}, "Error: pgconf needs an instance: add -i NAME\n"},
		{[]string{"pgconf", "-i", "pg1", "set"}, "Error: pgherd pgconf set expects at least one PARAM=VALUE\n"},
		{[]string{"pgconf", "-i", "pg1", "remove"}, "Error: pgherd pgconf remove expects at least one PARAM\n"},
		{[]string{"pgconf", "-i", "pg1", "set", "work_mem"}, "Error: \"work_mem\" is not PARAM=VALUE\n"},
		{[]string{"pgconf", "-i", "pg1", "set", "a.b.c=1"}, "Error: invalid parameter name \"a.b.c\": use letters, digits and underscores (and one dot for a custom parameter)\n"},
		{[]string{"pgconf", "-i", "pg1", "remove", "include_dir"}, "Error: include_dir is a directive, not a parameter: use pgconf edit to change includes\n"},
		{[]string{"pgconf", "-i", "pg1", "set", "x=1", "--yes", "--no"}, "Error: --yes and --no contradict each other: choose one\n"},
		{[]string{"pgconf", "-i", "pg1", "show", "-o", "xml"}, "Error: unknown output format \"xml\": use json or yaml\n"},
		{[]string{"pgconf", "-i", "pg1", "edit", "x"}, "Error: pgherd pgconf edit expects no arguments (got 1 arguments); see pgherd pgconf edit --help\n"},
	} {
		ios, _, out, errOut := iostreams.Test()
		if code := Main(context.Background(), ios, tc.args); code != ExitUsage || errOut.String() != tc.want || out.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

func TestPrintChanges(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	old, nv := "4MB", "8MB"
	printChanges(&Factory{IO: ios}, &pgconf.Result{DryRun: true, Changes: []pgconf.ParamChange{
		{Name: "work_mem", Old: &old, New: &nv, Effect: pgconf.EffectReload},
		{Name: "port", Old: &old, Effect: pgconf.EffectRestart},
		{Name: "x.y", New: &nv, Effect: pgconf.EffectReload},
	}})
	want := "work_mem: 4MB -> 8MB\nport: 4MB -> (not set)\nx.y: (not set) -> 8MB\ndry run: nothing was written\n" +
		"dry run: a reload would apply work_mem, x.y\ndry run: a restart would be needed for port\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func TestParseAssignmentUnquotes(t *testing.T) {
	for in, want := range map[string]string{
		"work_mem=8MB":                    "8MB",
		"search_path='\"$user\", public'": `"$user", public`,
		"log_line_prefix=%m [%p] ":        "%m [%p] ",
		"x.y='it''s'":                     "it's",
		"x.y='unbalanced":                 "'unbalanced",
		"shared_preload_libraries=":       "",
	} {
		c, err := pgconf.ParseAssignment(in)
		if err != nil || c.Value != want {
			t.Errorf("ParseAssignment(%q) = %q, %v; want %q", in, c.Value, err, want)
		}
	}
}
