package patroni

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// cmdlineParam is one entry of Patroni 3.0.2's ConfigHandler.CMDLINE_OPTIONS
// (patroni/postgresql/config.py): parameters Patroni passes on the
// postmaster's command line. Patroni drops them from a member's local YAML
// and takes them only from the cluster-wide configuration, and there only
// when accept says yes; otherwise it silently keeps its default.
type cmdlineParam struct {
	def    string
	accept func(string) bool // nil: Patroni sets it itself and accepts no value
	fix    string            // what accept requires, for error messages
}

func atLeast(min int) func(string) bool {
	return func(v string) bool {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		return err == nil && n >= min
	}
}

var cmdlineParams = map[string]cmdlineParam{
	"listen_addresses":          {def: "", accept: nil},
	"port":                      {def: "", accept: nil},
	"cluster_name":              {def: "", accept: nil},
	"hot_standby":               {def: "on", accept: nil},
	"wal_log_hints":             {def: "on", accept: nil},
	"wal_level":                 {def: "hot_standby", accept: oneOf("hot_standby", "replica", "logical"), fix: "replica or logical"},
	"max_connections":           {def: "100", accept: atLeast(25), fix: "an integer >= 25"},
	"max_wal_senders":           {def: "10", accept: atLeast(3), fix: "an integer >= 3"},
	"wal_keep_segments":         {def: "8", accept: atLeast(1), fix: "an integer >= 1"},
	"wal_keep_size":             {def: "128MB", accept: sizeAtLeastMB(16), fix: "a size >= 16MB"},
	"max_prepared_transactions": {def: "0", accept: atLeast(0), fix: "an integer >= 0"},
	"max_locks_per_transaction": {def: "64", accept: atLeast(32), fix: "an integer >= 32"},
	"track_commit_timestamp":    {def: "off", accept: isBool, fix: "on or off"},
	"max_replication_slots":     {def: "10", accept: atLeast(4), fix: "an integer >= 4"},
	"max_worker_processes":      {def: "8", accept: atLeast(2), fix: "an integer >= 2"},
}

func oneOf(vals ...string) func(string) bool {
	return func(v string) bool {
		for _, x := range vals {
			if strings.EqualFold(strings.TrimSpace(v), x) {
				return true
			}
		}
		return false
	}
}

func isBool(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "on", "off", "true", "false", "yes", "no", "1", "0", "t", "f", "y", "n":
		return true
	}
	return false
}

// sizeAtLeastMB parses a PostgreSQL size in MB units ("128MB", "1GB", "64"
// meaning MB) as Patroni's parse_int(v, 'MB') does.
func sizeAtLeastMB(min int64) func(string) bool {
	units := map[string]int64{"kb": 1, "mb": 1024, "gb": 1024 * 1024, "tb": 1024 * 1024 * 1024}
	return func(v string) bool {
		v = strings.ToLower(strings.TrimSpace(v))
		i := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
		num, unit := v, "mb"
		if i >= 0 {
			num, unit = v[:i], strings.TrimSpace(v[i:])
		}
		n, err := strconv.ParseInt(num, 10, 64)
		f, ok := units[unit]
		return err == nil && ok && n*f >= min*1024
	}
}

// ClusterWideParameters returns, sorted, the PostgreSQL parameters Patroni
// keeps cluster-wide in 3.0.2: it passes them on the postmaster command line,
// ignores them in a member's YAML, and takes them only from the dynamic
// configuration (PATCH /config {"postgresql": {"parameters": ...}}), which
// reaches every member.
func ClusterWideParameters() []string {
	names := make([]string, 0, len(cmdlineParams))
	for n := range cmdlineParams {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// IsClusterWide says whether Patroni keeps parameter name cluster-wide
// (case-insensitive, as PostgreSQL's names are).
func IsClusterWide(name string) bool {
	_, ok := cmdlineParams[strings.ToLower(name)]
	return ok
}

// CheckClusterWide says whether Patroni would accept value for the
// cluster-wide parameter name. Patroni does not report a refused value: it
// silently keeps its default, so pgherd refuses it first. Parameters that
// are not cluster-wide always pass (PostgreSQL validates them).
func CheckClusterWide(name, value string) error {
	p, ok := cmdlineParams[strings.ToLower(name)]
	switch {
	case !ok:
		return nil
	case p.accept == nil:
		return fmt.Errorf("%s is set by Patroni itself (from the member's listen address, cluster name and its own needs) and cannot be changed", name)
	case !p.accept(value):
		return fmt.Errorf("%s = %q: Patroni ignores this value silently and keeps %s; use %s", name, value, p.def, p.fix)
	}
	return nil
}
