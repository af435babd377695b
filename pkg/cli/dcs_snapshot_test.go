package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgherd/pgherd/pkg/iostreams"
)

func TestDcsSnapshotUsageErrors(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "site.yaml")
	os.WriteFile(site, []byte("prefix: "+dir+"\nservice_manager: process\n"), 0o600)
	out := filepath.Join(dir, "snap.db")
	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"dcs", "snapshot", "save"}, ExitUsage, "expects FILE and at most one member NAME"},
		{[]string{"dcs", "snapshot", "save", out, "a", "--endpoint", "http://127.0.0.1:1"}, ExitUsage, "give a member NAME or --endpoint, not both"},
		{[]string{"--site", site, "dcs", "snapshot", "save", out}, ExitError, "no dcs member is set up here"},
		{[]string{"--site", site, "dcs", "snapshot", "save", out, "--endpoint", "http://127.0.0.1:1"}, ExitError, "connection refused"},
	} {
		ios, _, _, errOut := iostreams.Test()
		if code := Main(t.Context(), ios, c.args); code != c.code || !strings.Contains(errOut.String(), c.err) || strings.Count(strings.TrimSpace(errOut.String()), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want %d and one line with %q", c.args, code, errOut.String(), c.code, c.err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d files left in %s, want only site.yaml", len(ents), dir)
	}
}
