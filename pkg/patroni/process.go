package patroni

import (
	"errors"
	"fmt"
	"os/exec"
)

// DefaultExe is Debian's Patroni.
const DefaultExe = "/usr/bin/patroni"

// ErrNotInstalled is returned by FindPatroni when there is no Patroni.
var ErrNotInstalled = errors.New("patroni is not installed")

// FindPatroni returns the path of the patroni program exe (a path or a name
// looked up in PATH; "" means DefaultExe), or an error wrapping
// ErrNotInstalled that says how to install it.
func FindPatroni(exe string) (string, error) {
	if exe == "" {
		exe = DefaultExe
	}
	p, err := exec.LookPath(exe)
	if err != nil {
		return "", fmt.Errorf("%w: %s not found; install it (Debian: apt install patroni) or set patroni.execpath in site.yaml", ErrNotInstalled, exe)
	}
	return p, nil
}

// Command is the command line that runs a member: exe and its YAML file.
// With Environ it is what a service manager needs to run Patroni.
func Command(exe, configFile string) []string {
	return []string{exe, configFile}
}

// Environ is the whole environment Patroni must run with. It is built from
// nothing, not filtered from pgherd's own: a PGPASSWORD (or any PG*
// variable) in Patroni's environment overrides the pgpass file Patroni
// writes, and pg_basebackup then fails with "password authentication
// failed" (measured with Patroni 3.0.2). home is the system user's home
// ("" leaves HOME unset).
func Environ(home string) []string {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"}
	if home != "" {
		env = append(env, "HOME="+home)
	}
	return env
}
