package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgherd/pgherd/pkg/iostreams"
)

func TestDcsTLSEnableUsage(t *testing.T) {
	site := filepath.Join(t.TempDir(), "site.yaml")
	os.WriteFile(site, []byte("prefix: "+t.TempDir()+"\nservice_manager: process\n"), 0o600)
	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"dcs", "tls", "enable", "x"}, ExitUsage, "expects no argument"},
		{[]string{"dcs", "tls", "enable", "--token", "x", "--peer", "127.0.0.1:1"}, ExitUsage, "--token: not a pgherd join token"},
		{[]string{"dcs", "tls", "enable", "--peer", "127.0.0.1:1"}, ExitUsage, "--token and --peer go together"},
		{[]string{"--site", site, "dcs", "tls", "enable"}, ExitError, "no dcs member is set up here"},
	} {
		ios, out, _, errOut := iostreams.Test()
		if code := Main(t.Context(), ios, c.args); code != c.code || !strings.Contains(errOut.String(), c.err) || out.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d and %q", c.args, code, out.String(), errOut.String(), c.code, c.err)
		}
	}
}
