package site

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment override. Nested keys are joined with
// a double underscore: postgresql.port is PGHERD_POSTGRESQL__PORT.
const EnvPrefix = "PGHERD"

// Loaded is the effective settings, the file they came from ("" for none)
// and where each value came from (dotted key → origin).
type Loaded struct {
	Settings
	File    string
	Origins map[string]Origin
}

// Find returns the site file to read: explicit (from --site), else
// $PGHERD_SITE, else $XDG_CONFIG_HOME/pgherd/site.yaml, else
// /etc/pgherd/site.yaml; "" when none exists. An explicit file that does not
// exist is an error.
func Find(explicit string) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", fmt.Errorf("site file %s: %w", explicit, errors.Unwrap(err))
		}
		return explicit, nil
	}
	if f := os.Getenv(SiteVar); f != "" {
		if _, err := os.Stat(f); err != nil {
			return "", fmt.Errorf("site file %s (from %s): %w", f, SiteVar, errors.Unwrap(err))
		}
		return f, nil
	}
	cfg := os.Getenv("XDG_CONFIG_HOME")
	if cfg == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cfg = filepath.Join(home, ".config")
		}
	}
	for _, f := range []string{filepath.Join(cfg, "pgherd", "site.yaml"), "/etc/pgherd/site.yaml"} {
		if _, err := os.Stat(f); err == nil {
			return f, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("site file %s: %w", f, err)
		}
	}
	return "", nil
}

// Load reads the settings: defaults, then the site file found by Find, then
// PGHERD_* variables. Errors name the file, line and key.
func Load(explicit string) (*Loaded, error) {
	file, err := Find(explicit)
	if err != nil {
		return nil, err
	}
	s := Defaults()
	fileKeys := map[string]bool{}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("site file: %w", err)
		}
		root, err := decodeStrict(file, data, &s)
		if err != nil {
			return nil, err
		}
		for _, k := range keyLines(root) {
			fileKeys[k] = true
		}
	}
	flat := settingsKeys(s)
	env, err := applyEnv(&s, flat)
	if err != nil {
		return nil, err
	}
	if s.PgBackRest == nil {
		offBackRest(flat)
	}
	given := func(key string) bool { return fileKeys[key] || env[key] != "" }
	err = s.Patroni.applyTiming(given)
	if err == nil {
		err = s.Validate()
	}
	if err != nil {
		where := "settings"
		if file != "" {
			where = file
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if os.Geteuid() != 0 && s.RunPrefix == fallbackRunPrefix() {
		if err := privateDir(s.RunPrefix, os.Geteuid()); err != nil {
			return nil, err
		}
	}
	org := origins(flat, fileKeys, env)
	if org["patroni.timing"] != FromDefault {
		for _, k := range timingKeys {
			if org[k] == FromDefault {
				org[k] = FromTiming
			}
		}
	}
	return &Loaded{Settings: s, File: file, Origins: org}, nil
}

// fallbackRunPrefix is a user's run directory when there is no
// XDG_RUNTIME_DIR: in the shared temporary directory, where another user
// may have made it first.
func fallbackRunPrefix() string {
	return filepath.Join(os.TempDir(), "pgherd-"+strconv.Itoa(os.Geteuid()))
}

// privateDir creates dir 0700 if absent and refuses it unless it is a real
// directory of uid's that nobody else can use: pidfiles and sockets there
// decide which process pgherd signals and which server it talks to.
func privateDir(dir string, uid int) error {
	const fix = "or set XDG_RUNTIME_DIR or run_prefix in site.yaml"
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("run directory %s: %w; %s", dir, errors.Unwrap(err), fix)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("run directory %s: %w", dir, err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("run directory %s is a symbolic link: remove it, %s", dir, fix)
	case !fi.IsDir():
		return fmt.Errorf("run directory %s is not a directory: remove it, %s", dir, fix)
	case int(st.Uid) != uid:
		return fmt.Errorf("run directory %s belongs to uid %d, not to you (uid %d): another user could control your pidfiles and sockets; remove it, %s", dir, st.Uid, uid, fix)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("run directory %s has mode %04o: others may use it; make it 0700 (chmod 700), %s", dir, fi.Mode().Perm(), fix)
	}
	return nil
}

// The regular expressions of errors are compiled only when there is one.
var lineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^line (\d+): (.*)$`) })

// decodeStrict decodes data over s, refusing unknown keys and wrong types,
// and turns yaml.v3's messages into "FILE:LINE: KEY: problem". It returns
// the document it parsed.
func decodeStrict(file string, data []byte, s *Settings) (*yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return &root, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(s)
	if err == nil {
		enablePgBackRest(&root, s)
		return &root, nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	keys := keyLines(&root)
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		m := lineRE().FindStringSubmatch(e)
		if m == nil {
			msgs = append(msgs, fmt.Sprintf("%s: %s", file, e))
			continue
		}
		line, _ := strconv.Atoi(m[1])
		msgs = append(msgs, fmt.Sprintf("%s:%d: %s", file, line, explain(keys[line], m[2])))
	}
	msg := msgs[0]
	if len(msgs) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(msgs)-1)
	}
	return nil, errors.New(msg)
}

var unknownRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^field (\S+) not found in type`) })

func explain(key, problem string) string {
	if m := unknownRE().FindStringSubmatch(problem); m != nil {
		if key == "" {
			key = m[1]
		}
		return fmt.Sprintf("unknown key %q: remove it or check its spelling against the reference site.yaml", key)
	}
	if key == "" {
		return problem
	}
	return fmt.Sprintf("%s: wrong type: %s", key, strings.ReplaceAll(problem, "`", "\""))
}

// keyLines maps each line holding a key or a value to the dotted key path.
func keyLines(root *yaml.Node) map[int]string {
	out := map[int]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				out[k.Line] = p
				if _, seen := out[v.Line]; !seen || v.Line != k.Line {
					out[v.Line] = p
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				if _, seen := out[c.Line]; !seen {
					out[c.Line] = path
				}
				walk(c, path)
			}
		}
	}
	walk(root, "")
	return out
}

// applyEnv lets PGHERD_* variables override any setting (flat: s's
// settings by dotted key) and returns the values they set, by key; any
// other PGHERD_* variable that is not in NonSettingVars is an error. A
// variable of the pgbackrest: section turns it on, with its defaults for
// the keys no variable sets.
func applyEnv(s *Settings, flat map[string]any) (map[string]string, error) {
	env, err := settingEnv(os.Environ(), flat)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first bad variable is the same one every time
	for _, k := range keys {
		if strings.HasPrefix(k, "pgbackrest.") && s.PgBackRest == nil {
			d := DefaultPgBackRest()
			s.PgBackRest = &d
		}
		if err := setKey(reflect.ValueOf(s).Elem(), k, EnvVar(k), env[k]); err != nil {
			return nil, err
		}
	}
	return env, nil
}

// EnvVar returns the environment variable that overrides a dotted key.
func EnvVar(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "__"))
}

func flatten(prefix string, v reflect.Value, out map[string]any) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Pointer && !fv.IsNil() && fv.Elem().Kind() == reflect.Struct {
			fv = fv.Elem()
		}
		if fv.Kind() == reflect.Struct {
			flatten(key, fv, out)
			continue
		}
		out[key] = fv.Interface()
	}
}
