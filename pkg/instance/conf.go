package instance

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// confSetting is one active line of a configuration file.
type confSetting struct {
	Value string
	File  string
	Line  int
}

// readConf returns the active settings of postgresql.conf then
// postgresql.auto.conf, the last line of a name winning, as PostgreSQL reads
// them. Include directives are not followed here: pgherd's own files do not
// use them.
func readConf(datadir string) (map[string]confSetting, error) {
	out := map[string]confSetting{}
	for _, f := range []string{"postgresql.conf", "postgresql.auto.conf"} {
		path := filepath.Join(datadir, f)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for n := 1; sc.Scan(); n++ {
			name, value, ok := parseConfLine(sc.Text())
			if ok {
				out[strings.ToLower(name)] = confSetting{Value: value, File: path, Line: n}
			}
		}
	}
	return out, nil
}

// parseConfLine splits "name = value # comment" and unquotes the value.
func parseConfLine(line string) (name, value string, ok bool) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", "", false
	}
	i := strings.IndexAny(line, " \t=")
	if i <= 0 {
		return "", "", false
	}
	name, rest := line[:i], strings.TrimLeft(line[i:], " \t")
	rest = strings.TrimLeft(strings.TrimPrefix(rest, "="), " \t")
	if strings.HasPrefix(rest, "'") {
		var b strings.Builder
		for j := 1; j < len(rest); j++ {
			c := rest[j]
			switch {
			case c == '\\' && j+1 < len(rest):
				j++
				b.WriteByte(rest[j])
			case c == '\'' && j+1 < len(rest) && rest[j+1] == '\'':
				j++
				b.WriteByte('\'')
			case c == '\'':
				return name, b.String(), true
			default:
				b.WriteByte(c)
			}
		}
		return name, b.String(), true
	}
	if k := strings.IndexByte(rest, '#'); k >= 0 {
		rest = rest[:k]
	}
	return name, strings.TrimSpace(rest), true
}

// quote renders a value as a single-quoted configuration string.
func quote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(v) + "'"
}
