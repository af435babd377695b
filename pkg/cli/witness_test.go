package cli

import (
	"context"
	"strings"
	"testing"

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

// TestWitnessRemoveNeedsConfirmation: without a terminal, remove asks for
// --yes; an unknown name says how to find the witnesses.
func TestWitnessRemoveNeedsConfirmation(t *testing.T) {
	t.Setenv("PGHERD_PREFIX", t.TempDir())
	ios, _, _, errOut := iostreams.Test()
	if code := Main(context.Background(), ios, []string{"witness", "remove", "w1"}); code != ExitError || !strings.Contains(errOut.String(), "add --yes") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	ios, _, _, errOut = iostreams.Test()
	if code := Main(context.Background(), ios, []string{"witness", "remove", "w1", "--yes"}); code != ExitError || !strings.Contains(errOut.String(), "no such DCS member on this host: w1") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	ios, _, _, errOut = iostreams.Test()
	if code := Main(context.Background(), ios, []string{"witness", "list"}); code != ExitError || !strings.Contains(errOut.String(), "give --peer") {
		t.Fatalf("list without members: exit %d: %s", code, errOut)
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
		PeerURL: "http://h:2380", ClientURL: "http://h:2379", AppliedIndex: 7, LastContact: "3ms", Healthy: true,
		Service: "stopped, given up after 5 tries (exited with status 1)"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "Name  Role     Suffrage  State     Peer URL       Client URL     Zone  Applied  Last contact  Healthy  Service here\n" +
		"w     witness  voter     follower  http://h:2380  http://h:2379  c     7        3ms           true     stopped, given up after 5 tries (exited with status 1)\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}
