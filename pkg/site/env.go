package site

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// SiteVar names the site file to read, unless --site does.
const SiteVar = "PGHERD_SITE"

// NonSettingVars are the PGHERD_* variables that are not settings, with
// what they are for. Every other PGHERD_* variable must name a setting: a
// mistyped one is an error, as a mistyped key in site.yaml is.
var NonSettingVars = map[string]string{
	SiteVar:            "the site file to read (before $XDG_CONFIG_HOME/pgherd/site.yaml and /etc/pgherd/site.yaml)",
	"PGHERD_DCS_TOKEN": "the join token of dcs join, witness add (--token) and instance create (--dcs-token) when the flag is not given",
	// pgherd's own tests and benchmarks, which run pgherd with them set.
	"PGHERD_TEST_SYSUSER":        "tests: the account PostgreSQL runs as when they run as root",
	"PGHERD_TEST_LOG":            "tests: log the DCS members of the tests to stderr",
	"PGHERD_KEEP_TEST_DIR":       "tests: keep the directories of failover tests",
	"PGHERD_SOAK":                "tests: run the failover suite's 10-minute soak (no false failover)",
	"PGHERD_SOAK_TIMINGS":        "tests: the soak's TTL/LOOP_WAIT/RETRY_TIMEOUT instead of the fast profile",
	"PGHERD_SOAK_DURATION":       "tests: how long the soak runs (default 10m)",
	"PGHERD_BIN":                 "benchmarks: the pgherd binary to measure",
	"PGHERD_BENCH_MEMBER_CONFIG": "benchmarks: the configuration of a DCS member the benchmark starts",
}

// Origin says where an effective setting came from.
type Origin string

// Origins of settings.
const (
	FromDefault Origin = "default"
	FromFile    Origin = "file"
	FromEnv     Origin = "env"
	// FromTiming is a timing that the profile patroni.timing gave.
	FromTiming Origin = "patroni.timing"
)

// checkEnvNames refuses a non-empty PGHERD_* variable that is neither a
// setting (one of vars: variable → key) nor in NonSettingVars.
func checkEnvNames(environ []string, vars map[string]string) error {
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix+"_") || val == "" {
			continue
		}
		if _, ok := vars[name]; ok {
			continue
		}
		if _, ok := NonSettingVars[name]; ok {
			continue
		}
		if near := nearest(name, vars); near != "" {
			return fmt.Errorf("%s is not a setting: did you mean %s (%s)?", name, near, vars[near])
		}
		others := make([]string, 0, len(NonSettingVars))
		for n := range NonSettingVars {
			others = append(others, n)
		}
		sort.Strings(others)
		return fmt.Errorf("%s is not a setting: a setting's variable is its site.yaml key in capitals with '__' between levels (postgresql.port is PGHERD_POSTGRESQL__PORT); the other PGHERD_* variables are %s",
			name, strings.Join(others, ", "))
	}
	return nil
}

// settingEnv returns the non-empty PGHERD_* variables of environ that name
// settings of flat, by dotted key, after checkEnvNames. Without any
// PGHERD_* variable other than NonSettingVars (the usual case) it builds
// none of the settings' variable names.
func settingEnv(environ []string, flat map[string]any) (map[string]string, error) {
	some := false
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		if _, other := NonSettingVars[name]; strings.HasPrefix(name, EnvPrefix+"_") && val != "" && !other {
			some = true
			break
		}
	}
	if !some {
		return nil, nil
	}
	vars := envVars(flat)
	if err := checkEnvNames(environ, vars); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		if key, ok := vars[name]; ok && val != "" {
			out[key] = val
		}
	}
	return out, nil
}

// envVars maps each setting's variable to its dotted key.
func envVars(flat map[string]any) map[string]string {
	out := make(map[string]string, len(flat))
	for k := range flat {
		out[EnvVar(k)] = k
	}
	return out
}

// nearest returns the variable of vars closest to name, within an edit
// distance of 2, or "".
func nearest(name string, vars map[string]string) string {
	best, bestD := "", 3
	names := make([]string, 0, len(vars))
	for v := range vars {
		names = append(names, v)
	}
	sort.Strings(names)
	for _, v := range names {
		if d := editDistance(name, v); d < bestD {
			best, bestD = v, d
		}
	}
	return best
}

// editDistance is the Damerau-Levenshtein distance (with adjacent
// transpositions, the commonest typo) between a and b.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// origins returns, for every dotted key of flat, where its value came
// from: a non-empty variable (env, by key), else a key of the site file,
// else the built-in default.
func origins(flat map[string]any, fileKeys map[string]bool, env map[string]string) map[string]Origin {
	out := make(map[string]Origin, len(flat))
	for k := range flat {
		switch {
		case env[k] != "":
			out[k] = FromEnv
		case fileKeys[k]:
			out[k] = FromFile
		default:
			out[k] = FromDefault
		}
	}
	return out
}

// setKey sets the setting at the dotted key below v (a struct, fields
// named by their yaml tags) to raw, read as the setting's type: a list is
// comma-separated (PGHERD_PATRONI__DCS__HOSTS=a:2379,b:2379). env names
// the variable in errors.
func setKey(v reflect.Value, key, env, raw string) error {
	for _, name := range strings.Split(key, ".") {
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		f, ok := fieldByTag(v, name)
		if !ok {
			return fmt.Errorf("%s: no setting %s", env, key)
		}
		v = f
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || v.OverflowInt(n) {
			return fmt.Errorf("%s=%q: not an integer", env, raw)
		}
		v.SetInt(n)
	case reflect.Float64:
		x, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("%s=%q: not a number", env, raw)
		}
		v.SetFloat(x)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("%s=%q: not a boolean (use true or false)", env, raw)
		}
		v.SetBool(b)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("%s: %s cannot be set by a variable: set it in the site file", env, key)
		}
		v.Set(reflect.ValueOf(strings.Split(raw, ",")).Convert(v.Type()))
	default:
		return fmt.Errorf("%s: %s cannot be set by a variable: set it in the site file", env, key)
	}
	return nil
}

// fieldByTag returns the field of struct v whose yaml tag is name.
func fieldByTag(v reflect.Value, name string) (reflect.Value, bool) {
	if v.Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}
