package instance

import (
	"strings"
	"testing"
)

func TestCheckOwned(t *testing.T) {
	for _, n := range []string{"data_directory", "HBA_FILE", "ident_file", "config_file", "external_pid_file"} {
		if err := CheckOwned(n); err == nil || !strings.Contains(err.Error(), "is set by pgherd") {
			t.Errorf("%s: %v", n, err)
		}
	}
	for _, n := range []string{"work_mem", "port", "data_directory_mode"} {
		if err := CheckOwned(n); err != nil {
			t.Errorf("%s refused: %v", n, err)
		}
	}
}

func TestCheckSocketDirs(t *testing.T) {
	dir := t.TempDir()
	if err := checkSocketDirs(dir + ", " + dir); err != nil {
		t.Errorf("two existing directories refused: %v", err)
	}
	for v, want := range map[string]string{
		"":                     "cannot be empty",
		" , ":                  "cannot be empty",
		"relative":             "is not an absolute path",
		dir + ",/nonexistent/": "directory /nonexistent/ does not exist",
	} {
		if err := checkSocketDirs(v); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", v, err, want)
		}
	}
}
