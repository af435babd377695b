package cli

import (
	"fmt"
	"runtime/debug"
)

// version and commit are set by the Makefile with -ldflags -X; a plain
// `go build` or `go install` falls back to the module's build information.
var version, commit string

// buildVersion says which pgherd this is: version, commit (with "+dirty"
// when built from a modified tree) and the Go version that built it.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return versionString(version, commit, false, "unknown")
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	v := version
	if v == "" {
		v = bi.Main.Version
	}
	c := commit
	if c == "" {
		c = rev
	} else {
		dirty = false
	}
	return versionString(v, c, dirty, bi.GoVersion)
}

// versionString formats "VERSION (commit COMMIT, GOVERSION)".
func versionString(v, c string, dirty bool, goVersion string) string {
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	if c == "" {
		c = "unknown"
	}
	if len(c) > 12 {
		c = c[:12]
	}
	if dirty {
		c += "+dirty"
	}
	return fmt.Sprintf("%s (commit %s, %s)", v, c, goVersion)
}
