package instance

import (
	"strings"

	"github.com/pgherd/pgherd/pkg/pgconf"
)

// fileSettings returns what the configuration files set, parameter name
// (lower case) to value, as the server would read them: postgresql.conf
// with its includes, then postgresql.auto.conf.
func fileSettings(c *pgconf.Config) map[string]string {
	out := map[string]string{}
	for _, n := range c.Names() {
		conf, auto := c.Lookup(n)
		if auto != nil {
			conf = auto
		}
		out[n] = conf.Value
	}
	return out
}

// quote renders a value as a single-quoted configuration string.
func quote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(v) + "'"
}
