package site

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// PgBackRest turns on backups with pgBackRest for instances and Patroni
// clusters. It is nil (off) unless site.yaml has a pgbackrest: section; an
// empty section turns it on with the defaults below.
type PgBackRest struct {
	// Execpath is the pgbackrest program.
	Execpath string `yaml:"execpath" json:"execpath"`
	// Configpath is an instance's pgBackRest configuration file ({name} is
	// cluster.SCOPE for a Patroni cluster's, one per host), written by
	// pgherd (0600: options may hold an object store's keys).
	Configpath string `yaml:"configpath" json:"configpath"`
	// Logpath is the directory of pgBackRest's log files.
	Logpath string `yaml:"logpath" json:"logpath"`
	// Repository is where backups and archived WAL go.
	Repository PgBackRestRepository `yaml:"repository" json:"repository"`
}

// PgBackRestRepository is pgBackRest's repo1.
type PgBackRestRepository struct {
	// Path is repo1-path: a directory on this host (relative to prefix), or
	// the path inside a bucket or on a repository host.
	Path string `yaml:"path" json:"path"`
	// Options are further pgBackRest options of the [global] section, passed
	// through as they are (repo1-type: s3, repo1-s3-bucket...,
	// repo1-retention-full...). Shown masked where they hold secrets.
	Options RepoOptions `yaml:"options" json:"options,omitempty"`
}

// RepoOptions are pgBackRest options; their JSON (site show, -o json)
// masks the values of the options that hold secrets (repo1-s3-key-secret,
// repo1-cipher-pass, ...): settings are shown, secrets never.
type RepoOptions map[string]string

// MarshalJSON implements json.Marshaler.
func (o RepoOptions) MarshalJSON() ([]byte, error) {
	shown := make(map[string]string, len(o))
	for k, v := range o {
		if secretOption(k) {
			v = "********"
		}
		shown[k] = v
	}
	return json.Marshal(shown)
}

// secretOption tells whether a pgBackRest option holds a secret.
func secretOption(name string) bool {
	for _, s := range []string{"-key", "-secret", "-pass", "-token", "-password"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// DefaultPgBackRest is the pgbackrest: section's defaults.
func DefaultPgBackRest() PgBackRest {
	return PgBackRest{
		Execpath:   "/usr/bin/pgbackrest",
		Configpath: "etc/pgbackrest/{version}-{name}.conf",
		Logpath:    "log/pgbackrest",
		Repository: PgBackRestRepository{Path: "srv/pgbackrest"},
	}
}

// fillDefaults gives the keys a pgbackrest: section leaves out their default.
func (p *PgBackRest) fillDefaults() {
	d := DefaultPgBackRest()
	for _, f := range []struct {
		v   *string
		def string
	}{
		{&p.Execpath, d.Execpath}, {&p.Configpath, d.Configpath}, {&p.Logpath, d.Logpath}, {&p.Repository.Path, d.Repository.Path},
	} {
		if *f.v == "" {
			*f.v = f.def
		}
	}
}

// pgherdOptions are the options pgherd sets itself in an instance's
// pgBackRest file: passing them through would make backups of one instance
// read another's data directory or log elsewhere than pgherd looks.
var pgherdOptions = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(pg[0-9]+-.*|repo1-path|stanza|config.*|log-path|lock-path|spool-path)$`)
})

var optionName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`) })

func (p *PgBackRest) validate() error {
	if !strings.Contains(p.Configpath, "{name}") || !strings.Contains(p.Configpath, "{version}") {
		return fmt.Errorf("pgbackrest.configpath: %q must contain {version} and {name}", p.Configpath)
	}
	keys := make([]string, 0, len(p.Repository.Options))
	for k := range p.Repository.Options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case !optionName().MatchString(k):
			return fmt.Errorf("pgbackrest.repository.options: %q is not a pgBackRest option name (lower-case letters, digits and '-')", k)
		case pgherdOptions().MatchString(k):
			return fmt.Errorf("pgbackrest.repository.options: %s is set by pgherd (use pgbackrest.repository.path for repo1-path): remove it", k)
		case strings.ContainsAny(p.Repository.Options[k], "\n\r"):
			return fmt.Errorf("pgbackrest.repository.options: the value of %s holds a line break", k)
		}
	}
	return nil
}

// enablePgBackRest turns pgBackRest on when the site file has a
// pgbackrest: key, even an empty one (which decodes as null).
func enablePgBackRest(root *yaml.Node, s *Settings) {
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "pgbackrest" && s.PgBackRest == nil {
			s.PgBackRest = &PgBackRest{}
		}
	}
	if s.PgBackRest != nil {
		s.PgBackRest.fillDefaults()
	}
}

// settingsKeys flattens s by dotted key, with the pgbackrest: section's
// keys even when it is off, so that PGHERD_PGBACKREST__* variables are
// known and can turn it on.
func settingsKeys(s Settings) map[string]any {
	if s.PgBackRest == nil {
		d := DefaultPgBackRest()
		s.PgBackRest = &d
	}
	flat := map[string]any{}
	flatten("", reflect.ValueOf(s), flat)
	return flat
}

// offBackRest leaves the section's keys out of flat: it stays off.
func offBackRest(flat map[string]any) {
	for k := range flat {
		if strings.HasPrefix(k, "pgbackrest.") {
			delete(flat, k)
		}
	}
	flat["pgbackrest"] = nil
}
