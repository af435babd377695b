package instance

import (
	"fmt"
	"strings"

	"github.com/pgherd/pgherd/pkg/pgconf"
)

// fileSettings returns what the configuration files set, parameter name
// (lower case) to value, as the server would read them: postgresql.conf
// with its includes, then postgresql.auto.conf.
func fileSettings(i *Instance) (map[string]string, error) {
	c, err := pgconf.Load(i.ConfFile(), i.DataDir)
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", i.ID(), err)
	}
	out := map[string]string{}
	for _, n := range c.Names() {
		conf, auto := c.Lookup(n)
		if auto != nil {
			conf = auto
		}
		out[n] = conf.Value
	}
	return out, nil
}

// quote renders a value as a single-quoted configuration string.
func quote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(v) + "'"
}
