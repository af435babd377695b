package pgconf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// sslFiles are the files ssl = on makes the server read at start, with
// their defaults ("" means none), relative to the data directory.
var sslFiles = []struct{ name, def string }{
	{"ssl_cert_file", "server.crt"}, {"ssl_key_file", "server.key"}, {"ssl_ca_file", ""}, {"ssl_crl_file", ""},
}

// startable refuses SSL settings the server would not start with, although
// each value is valid: ssl = on with a certificate or key file that is
// missing, or a key file PostgreSQL finds too open. A reload does not tell
// (the server keeps its old SSL context and logs a line); the next start
// fails. Only changes to these parameters are checked: an unrelated change
// is not refused for a configuration that was already there.
func startable(dataDir string, c *Config, changes []ParamChange) error {
	touched := false
	for _, ch := range changes {
		touched = touched || ch.Name == "ssl" || strings.HasPrefix(ch.Name, "ssl_") && ch.Name != "ssl_ciphers"
	}
	if !touched || !parseBool(c.Next("ssl", "off")) {
		return nil
	}
	owner := -1
	if fi, err := os.Stat(dataDir); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			owner = int(st.Uid)
		}
	}
	for _, f := range sslFiles {
		v := c.Next(f.name, f.def)
		if v == "" {
			continue
		}
		path := v
		if !filepath.IsAbs(path) {
			path = filepath.Join(dataDir, path)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("ssl = on reads %s %s at start, and it does not exist, so the server would not start: put the file there, or set %s", f.name, path, f.name)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if f.name != "ssl_key_file" || !ok {
			continue
		}
		// PostgreSQL's own rule: 0600 or less when the server's account
		// owns the key, 0640 or less when root does.
		mode := fi.Mode().Perm()
		if st.Uid != 0 && mode&0o077 != 0 || st.Uid == 0 && mode&0o037 != 0 {
			return fmt.Errorf("ssl_key_file %s has mode %04o, and PostgreSQL refuses a key readable by others, so the server would not start: chmod 0600 %s", path, mode, path)
		}
		if owner >= 0 && int(st.Uid) != owner && st.Uid != 0 {
			return fmt.Errorf("ssl_key_file %s belongs to uid %d, and PostgreSQL reads a key owned by its own account or root only, so the server would not start: chown it", path, st.Uid)
		}
	}
	return nil
}

// Next is the value the next start reads for name: postgresql.auto.conf's,
// else the main tree's, else def.
func (c *Config) Next(name, def string) string {
	conf, auto := c.Lookup(name)
	switch {
	case auto != nil:
		return auto.Value
	case conf != nil:
		return conf.Value
	}
	return def
}

// parseBool reads a boolean as PostgreSQL does: on, off, true, false,
// yes, no, 1, 0 and unique prefixes of them.
func parseBool(v string) bool {
	v = strings.ToLower(strings.TrimSpace(v))
	switch {
	case v == "1", v == "on":
		return true
	case v == "":
		return false
	}
	return strings.HasPrefix("true", v) || strings.HasPrefix("yes", v)
}
