package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/iostreams"
)

// TestBackupFlagErrors: bad flags fail before anything is read, with exit
// code 2 and one line saying what to do.
func TestBackupFlagErrors(t *testing.T) {
	t.Setenv("PGHERD_PREFIX", t.TempDir())
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"instance", "backup", "pg1", "--type", "weekly"}, `--type "weekly": use full, diff or incr`},
		{[]string{"instance", "backup"}, "expects one instance NAME"},
		{[]string{"instance", "backups", "pg1", "-o", "xml"}, `unknown output format "xml"`},
		{[]string{"instance", "restore", "pg1"}, "give exactly one of --label, --date or --latest"},
		{[]string{"instance", "restore", "pg1", "--latest", "--date", "2024-01-01 00:00:00"}, "give exactly one of --label, --date or --latest"},
		{[]string{"instance", "restore", "pg1", "--date", "2024-13-01"}, `--date "2024-13-01" is not a timestamp`},
	} {
		ios, _, _, errOut := iostreams.Test()
		if code := Main(context.Background(), ios, c.args); code != ExitUsage || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: exit %d, %q; want exit %d and %q", c.args, code, errOut.String(), ExitUsage, c.want)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	utc := time.Date(2024, 5, 1, 12, 2, 11, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2024-05-01 14:02:11+02:00":     utc,
		"2024-05-01 14:02:11+02":        utc,
		"2024-05-01T12:02:11Z":          utc,
		"2024-05-01 12:02:11.250000+00": utc.Add(250 * time.Millisecond),
		"2024-05-01 12:02:11":           time.Date(2024, 5, 1, 12, 2, 11, 0, time.Local),
		" 2024-05-01 12:02:11.5-01:30 ": utc.Add(90*time.Minute + 500*time.Millisecond),
	} {
		got, err := parseTimestamp(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: got %v, %v; want %v", in, got, err, want)
		}
	}
}
