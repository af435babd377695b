package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pgherd/pgherd/pkg/iostreams"
	"github.com/spf13/cobra"
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

// TestNounAloneIsTheSameBranch: Main builds only the noun its arguments
// name; every command of that branch must say and accept exactly what it
// does in the whole tree (help, flags, global flags, usage errors).
func TestNounAloneIsTheSameBranch(t *testing.T) {
	var names []string
	for _, c := range NewCmdRoot(NewFactory(&iostreams.IOStreams{})).Commands() {
		if c.Name() != "completion" {
			names = append(names, c.Name())
		}
	}
	var want []string
	for _, n := range nouns {
		want = append(want, n.name)
	}
	slices.Sort(want) // Commands() sorts by name
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("the tree's nouns are %q, the table's %q: a noun's name must be its command's", names, want)
	}
	run := func(args []string, whole bool) string {
		ios, _, out, errOut := iostreams.Test()
		root := newCmdRoot(NewFactory(ios), args)
		if whole {
			root = NewCmdRoot(NewFactory(ios))
		} else if len(root.Commands()) != 1 {
			t.Fatalf("%v: built %d nouns, want 1", args, len(root.Commands()))
		}
		root.SetArgs(args)
		root.SetOut(ios.Out)
		root.SetErr(ios.ErrOut)
		err := root.Execute()
		return fmt.Sprintf("%s|%s|%v", out, errOut, err)
	}
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, args := range [][]string{append(path, "--help"), append(path, "--nosuchflag"), append(path, "nosuchcommand"),
			append([]string{"-q", "--site", "/nonexistent", "-L", "debug", "--log-level=warning"}, path...)} {
			if got, whole := run(args, false), run(args, true); got != whole {
				t.Errorf("%v: built alone:\n%s\nin the whole tree:\n%s", args, got, whole)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string(nil), path...), sub.Name()))
		}
	}
	for _, c := range NewCmdRoot(NewFactory(&iostreams.IOStreams{})).Commands() {
		if c.Name() != "completion" && c.Name() != "help" {
			walk(c, []string{c.Name()})
		}
	}
}

// TestNounOf: the root's flags before a noun are skipped; anything cobra
// alone should read builds the whole tree.
func TestNounOf(t *testing.T) {
	root := newCmdRoot(NewFactory(&iostreams.IOStreams{}), []string{})
	for args, want := range map[string]string{
		"instance get pg1":                  "instance",
		"-q pgconf -i pg1 set work_mem=8MB": "pgconf",
		"--site /x -L debug dcs status":     "dcs",
		"--site=/x --quiet=true role get r": "role",
		"":                                  "",
		"help instance":                     "",
		"completion bash":                   "",
		"instanc get":                       "",
		"-qL debug instance get pg1":        "",
		"-h instance":                       "",
		"--nosuch instance":                 "",
		"-- instance":                       "",
		"--site":                            "",
	} {
		if got := nounOf(root, strings.Fields(args)); got != want {
			t.Errorf("%q: %q, want %q", args, got, want)
		}
	}
}
