package cli

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgherd/pgherd/pkg/iostreams"
)

// Bad arguments of role, database, pghba and apply are refused before
// anything connects, with exit code 2 and one line saying what to do.
func TestObjectsArguments(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("roles:\n  - name: a\n    superuzer: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"role", "create", "", "-i", "pg1"}, "Error: role name is empty\n"},
		{[]string{"role", "create", "x"}, "Error: this command needs an instance: add -i NAME\n"},
		{[]string{"role", "create", "x", "-i", "pg1", "--password", "--password-file", "f"}, "Error: --password and --password-file contradict each other: choose one\n"},
		{[]string{"role", "create", "x", "-i", "pg1", "--pgpass"}, "Error: --pgpass keeps a password: add --password or --password-file\n"},
		{[]string{"role", "alter", "x", "y", "-i", "pg1"}, "Error: pgherd role alter expects one role NAME (got 2 arguments); see pgherd role alter --help\n"},
		{[]string{"role", "drop", "x", "-i", "pg1", "--reassign-to", "y", "--drop-owned"}, "Error: --reassign-to and --drop-owned contradict each other: choose one\n"},
		{[]string{"role", "list", "-i", "pg1", "-o", "xml"}, "Error: unknown output format \"xml\": use json or yaml\n"},
		{[]string{"database", "run", "-i", "pg1", "--all", "-d", "x", "select 1"}, "Error: --all and --database contradict each other: choose one\n"},
		{[]string{"database", "run", "-i", "pg1", "select 1", "select 2"}, "Error: pgherd database run takes the SQL as one argument (quote it)\n"},
		{[]string{"database", "create", "x", "-i", "pg1", "--encoding", "UTF8", "-o", "xml"}, "Error: unknown output format \"xml\": use json or yaml\n"},
		{[]string{"pghba", "add", "-i", "pg1", "--address", "10.0.0.1", "--method", "md5"}, "Error: --address \"10.0.0.1\" has no prefix length: write 10.0.0.1/32 (or /128 for IPv6)\n"},
		{[]string{"pghba", "add", "--address", "10.0.0.0/8", "--method", "md5"}, "Error: this command needs an instance: add -i NAME\n"},
		{[]string{"pghba", "remove", "-i", "pg1", "--type", "local", "--address", "10.0.0.0/8"}, "Error: a local entry has no address: drop --address, or use --type host\n"},
		{[]string{"apply", "-i", "pg1"}, "Error: apply needs a manifest: add -f FILE\n"},
		{[]string{"apply", "-i", "pg1", "-f", bad}, "Error: manifest " + bad + ": line 3: field superuzer not found in type manifest.Role\n"},
	} {
		ios, _, out, errOut := iostreams.Test()
		if code := Main(context.Background(), ios, tc.args); code != ExitUsage || errOut.String() != tc.want || out.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

// Without a terminal, a password is the first line of stdin; an empty
// stdin is an error that says where a password may come from.
func TestReadPasswordFromStdin(t *testing.T) {
	ios, in, _, _ := iostreams.Test()
	in.WriteString("s3cret\nrest\n")
	if pw, err := readPassword(&Factory{IO: ios}, "", "role x"); err != nil || pw != "s3cret" {
		t.Errorf("got %q, %v", pw, err)
	}
	ios, _, _, _ = iostreams.Test()
	if _, err := readPassword(&Factory{IO: ios}, "", "role x"); err == nil || err.Error() != "no password on stdin: give it on the first line of stdin, or use --password-file FILE" {
		t.Errorf("empty stdin: %v", err)
	}
}
