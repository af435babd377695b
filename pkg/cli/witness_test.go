package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/iostreams"
)

// TestWitnessFlagErrors: bad flags fail before anything is touched, with
// exit code 2 and one line saying what to do.
func TestWitnessFlagErrors(t *testing.T) {
	t.Setenv("PGHERD_PREFIX", t.TempDir())
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"witness", "add", "w1"}, "--peer HOST:PORT is required"},
		{[]string{"witness", "add", "w1", "--peer", "h:1", "--profile", "prod"}, `--profile "prod": use production or testing`},
		{[]string{"witness", "add", "--peer", "h:1"}, "expects one witness NAME"},
		{[]string{"witness", "list", "-o", "xml"}, `unknown output format "xml"`},
		{[]string{"witness", "check", "-o", "xml"}, `unknown output format "xml"`},
	} {
		ios, _, _, errOut := iostreams.Test()
		if code := Main(context.Background(), ios, c.args); code != ExitUsage || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: exit %d, %q; want exit %d and %q", c.args, code, errOut.String(), ExitUsage, c.want)
		}
	}
}

// TestWitnessRemoveNeedsConfirmation: an unknown name or a data member is
// refused before any confirmation, saying how to find the witnesses;
// without a terminal, removing a witness asks for --yes.
func TestWitnessRemoveNeedsConfirmation(t *testing.T) {
	prefix := t.TempDir()
	t.Setenv("PGHERD_PREFIX", prefix)
	for _, c := range []struct{ args, want string }{
		{"witness list", "give --peer"},
		{"witness remove w1", "no such DCS member on this host: w1"},
		{"witness remove w1 --yes", "no such DCS member on this host: w1"},
		{"witness remove d1", "not a witness: d1 is a data member of the DCS, not a witness"},
		{"witness status d1", "not a witness: d1 is a data member"},
		{"witness check d1", "not a witness: d1 is a data member"},
		{"witness remove w2", "refusing to remove witness w2 without confirmation: add --yes"},
	} {
		if c.args == "witness remove d1" {
			writeMemberConfig(t, prefix, "d1", "data")
			writeMemberConfig(t, prefix, "w2", "witness")
		}
		ios, _, _, errOut := iostreams.Test()
		if code := Main(context.Background(), ios, strings.Fields(c.args)); code != ExitError || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%s: exit %d: %s; want exit 1 and %q", c.args, code, errOut, c.want)
		}
	}
}

func writeMemberConfig(t *testing.T, prefix, name, role string) {
	t.Helper()
	dir := filepath.Join(prefix, "dcs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := "name: " + name + "\nrole: " + role + "\ndata_dir: " + filepath.Join(dir, name) + "\nlisten_peer: 127.0.0.1:1\nlisten_client: 127.0.0.1:2\n"
	if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestWitnessOnExternalEtcd: witness commands on a site whose Patroni
// uses an external etcd say what to do instead.
func TestWitnessOnExternalEtcd(t *testing.T) {
	t.Setenv("PGHERD_PREFIX", t.TempDir())
	t.Setenv("PGHERD_PATRONI__DCS__KIND", "etcd")
	for _, args := range [][]string{{"witness", "add", "w1", "--peer", "h:1"}, {"witness", "list"}} {
		ios, _, _, errOut := iostreams.Test()
		if code := Main(context.Background(), ios, args); code != ExitError || !strings.Contains(errOut.String(), "a third etcd member on another host") {
			t.Errorf("%v: exit %d: %s", args, code, errOut)
		}
	}
}

func TestWriteMembersTable(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	f := &Factory{IO: ios}
	err := writeMembers(f, "", []dcs.MemberStatus{{Name: "w", Role: "witness", Suffrage: "voter", RaftState: "follower", Zone: "c",
		PeerURL: "http://h:2380", ClientURL: "http://h:2379", AppliedIndex: 7, LastContactS: dcs.Seconds(3 * time.Millisecond), Healthy: true}})
	if err != nil {
		t.Fatal(err)
	}
	want := "Name  Role     Suffrage  State     Peer URL       Client URL     Zone  Applied  Last contact  Healthy\n" +
		"w     witness  voter     follower  http://h:2380  http://h:2379  c     7        3ms           true\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}
