package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgherd/pgherd/pkg/instance"
	"github.com/pgherd/pgherd/pkg/iostreams"
)

func TestDcsUsageErrors(t *testing.T) {
	site := filepath.Join(t.TempDir(), "site.yaml")
	os.WriteFile(site, []byte("prefix: "+t.TempDir()+"\nservice_manager: process\n"), 0o600)
	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"dcs", "init", "--name", "a"}, ExitUsage, "--name, --listen-peer and --listen-client are required"},
		{[]string{"dcs", "init", "--name", "a", "--listen-peer", "127.0.0.1:0", "--listen-client", "127.0.0.1:1"}, ExitUsage, "with a fixed port"},
		{[]string{"dcs", "join", "--name", "a", "--listen-peer", "127.0.0.1:1", "--listen-client", "127.0.0.1:2"}, ExitUsage, "--peer is required"},
		{[]string{"dcs", "serve"}, ExitUsage, "--config is required"},
		{[]string{"dcs", "token", "create", "--role", "admin"}, ExitUsage, `--role "admin": use data or witness`},
		{[]string{"dcs", "token", "create", "--ttl", "0s"}, ExitUsage, "--ttl 0s: want more than 0 and at most 168h"},
		{[]string{"dcs", "join", "--name", "a", "--peer", "127.0.0.1:1", "--token", "x", "--listen-peer", "127.0.0.1:1", "--listen-client", "127.0.0.1:2"}, ExitUsage, "--token: not a pgherd join token"},
		{[]string{"--site", site, "dcs", "token", "create"}, ExitError, "holds no CA of the DCS cluster"},
		{[]string{"dcs", "members", "-o", "xml"}, ExitUsage, `unknown output format "xml"`},
		{[]string{"dcs", "leave"}, ExitUsage, "expects one member NAME"},
		{[]string{"--site", site, "dcs", "members"}, ExitError, "no dcs member is set up here"},
		{[]string{"--site", site, "dcs", "status", "--peer", "127.0.0.1:1"}, ExitStopped, "connection refused"},
		{[]string{"--site", site, "dcs", "join", "--name", "a", "--peer", "127.0.0.1:1", "--listen-peer", "127.0.0.1:1", "--listen-client", "127.0.0.1:2"}, ExitError, "holds no CA of the DCS cluster"},
		{[]string{"dcs", "tls", "enable", "x"}, ExitUsage, "expects no argument"},
		{[]string{"dcs", "tls", "enable", "--token", "x", "--peer", "127.0.0.1:1"}, ExitUsage, "--token: not a pgherd join token"},
		{[]string{"dcs", "tls", "enable", "--peer", "127.0.0.1:1"}, ExitUsage, "--token and --peer go together"},
		{[]string{"dcs", "tls", "enable", "-o", "xml"}, ExitUsage, `unknown output format "xml"`},
		{[]string{"--site", site, "dcs", "tls", "enable"}, ExitError, "no dcs member is set up here"},
	} {
		ios, _, _, errOut := iostreams.Test()
		if code := Main(t.Context(), ios, c.args); code != c.code || !strings.Contains(errOut.String(), c.err) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errOut.String(), c.code, c.err)
		}
	}
}

// TestDcsTLSJSON: dcs tls enable -o json lists the members restarted in
// the order they were, with their mode, and keeps every array present.
func TestDcsTLSJSON(t *testing.T) {
	var b strings.Builder
	res := &instance.DCSTLSResult{Paused: []string{"main"}, Accepting: []string{"pg2", "w1"}, Restarted: []string{"15/pg2"}, TLSOnly: []string{"pg2"}}
	if err := writeData(&b, "json", dcsTLSData(res, true)); err != nil {
		t.Fatal(err)
	}
	want := `{
  "paused_clusters": [
    "main"
  ],
  "members_restarted": [
    {
      "name": "pg2",
      "mode": "tls_beside_plain"
    },
    {
      "name": "w1",
      "mode": "tls_beside_plain"
    },
    {
      "name": "pg2",
      "mode": "tls_only"
    }
  ],
  "patroni_restarted": [
    "15/pg2"
  ],
  "resumed_clusters": [],
  "remote_plain": [],
  "tls_everywhere": true
}
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
