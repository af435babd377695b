// Package manifest converges the roles, databases and pg_hba entries of an
// instance to what a YAML manifest lists: it creates what is missing,
// alters what differs and drops what is marked "state: absent". A plan is
// made whole (every input checked) before anything changes, so a bad
// manifest changes nothing, and applying the same manifest twice changes
// nothing the second time. Passwords are never in a manifest: it names
// files that hold them.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Manifest is what an instance should hold.
type Manifest struct {
	Roles     []Role     `yaml:"roles"`
	Databases []Database `yaml:"databases"`
	PgHBA     []HBAEntry `yaml:"pg_hba"`
	dir       string     // relative password files are read from here
}

// State is present (the default) or absent.
type State string

// Role is a role of the manifest; unset attributes are left as they are.
type Role struct {
	Name            string   `yaml:"name"`
	State           State    `yaml:"state"`
	Login           *bool    `yaml:"login"`
	Superuser       *bool    `yaml:"superuser"`
	CreateDB        *bool    `yaml:"createdb"`
	CreateRole      *bool    `yaml:"createrole"`
	Replication     *bool    `yaml:"replication"`
	Inherit         *bool    `yaml:"inherit"`
	ConnectionLimit *int     `yaml:"connection_limit"`
	ValidUntil      string   `yaml:"valid_until"`
	PasswordFile    string   `yaml:"password_file"`
	InRoles         []string `yaml:"in_roles"`
}

// Database is a database of the manifest.
type Database struct {
	Name       string   `yaml:"name"`
	State      State    `yaml:"state"`
	Owner      string   `yaml:"owner"`
	Encoding   string   `yaml:"encoding"`
	Locale     string   `yaml:"locale"`
	Tablespace string   `yaml:"tablespace"`
	Schemas    []string `yaml:"schemas"`
	Extensions []string `yaml:"extensions"`
}

// HBAEntry is a pg_hba entry of the manifest; database and user default
// to all.
type HBAEntry struct {
	State    State    `yaml:"state"`
	Type     string   `yaml:"type"`
	Database []string `yaml:"database"`
	User     []string `yaml:"user"`
	Address  string   `yaml:"address"`
	Method   string   `yaml:"method"`
}

// Load reads a manifest file strictly: an unknown field, a duplicate or
// a wrong type is an error that names the file and the line.
func Load(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the manifest: %w", err)
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	m.dir = filepath.Dir(path)
	return m, nil
}

// Parse reads a manifest strictly, then checks it.
func Parse(b []byte) (*Manifest, error) {
	m := &Manifest{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(m); err != nil && !errors.Is(err, io.EOF) {
		return nil, errors.New(strings.TrimPrefix(strings.ReplaceAll(err.Error(), "\n  ", "; "), "yaml: unmarshal errors:; "))
	}
	return m, m.check()
}

func (m *Manifest) check() error {
	seen := map[string]bool{}
	for i, r := range m.Roles {
		if err := checkState(r.State); err != nil {
			return fmt.Errorf("roles[%d] (%s): %w", i, r.Name, err)
		}
		if seen["role "+r.Name] {
			return fmt.Errorf("roles[%d]: role %q is listed twice", i, r.Name)
		}
		seen["role "+r.Name] = true
	}
	for i, d := range m.Databases {
		if err := checkState(d.State); err != nil {
			return fmt.Errorf("databases[%d] (%s): %w", i, d.Name, err)
		}
		if seen["db "+d.Name] {
			return fmt.Errorf("databases[%d]: database %q is listed twice", i, d.Name)
		}
		seen["db "+d.Name] = true
	}
	for i, e := range m.PgHBA {
		if err := checkState(e.State); err != nil {
			return fmt.Errorf("pg_hba[%d]: %w", i, err)
		}
	}
	return nil
}

func checkState(s State) error {
	switch s {
	case "", "present", "absent":
		return nil
	}
	return fmt.Errorf("state %q: use present or absent", s)
}
