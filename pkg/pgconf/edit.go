package pgconf

import (
	"fmt"
	"strings"
)

// How Set and Remove edit a file, and why:
//
//   - Set replaces the value of the active line (the last assignment of the
//     name in processing order, possibly in an included file) in place, so
//     the line keeps its spot, its separator and its trailing comment.
//   - Every other assignment of the name in the tree is commented out and
//     reported. Earlier duplicates do nothing today, but they would silently
//     come back to life the day the active line is removed.
//   - When the name is not assigned anywhere, Set uncomments the last
//     commented-out assignment of it in the main file ("#work_mem = 4MB
//     # min 64kB" in the sample file), so the setting lands in its documented
//     section with its comment; failing that it appends "name = value" to the
//     main file. Any position works then, since nothing else assigns the name.
//   - Remove comments out every assignment of the name, so the server falls
//     back to its default (or to postgresql.auto.conf).
//   - postgresql.auto.conf is never edited: it belongs to ALTER SYSTEM.

// directives are the names that are include directives, not parameters.
var directives = []string{"include", "include_dir", "include_if_exists"}

// CheckName refuses what cannot be a parameter name in a configuration file:
// PostgreSQL accepts an identifier, or two joined by a dot for a custom
// (extension) parameter.
func CheckName(name string) error {
	toks, c := lexLine(name)
	if c != len(name) || len(toks) != 1 || toks[0].start != 0 || toks[0].end != len(name) ||
		toks[0].kind != tokID && toks[0].kind != tokQualifiedID {
		return fmt.Errorf("invalid parameter name %q: use letters, digits and underscores (and one dot for a custom parameter)", name)
	}
	for _, d := range directives {
		if sameName(name, d) {
			return fmt.Errorf("%s is a directive, not a parameter: use pgconf edit to change includes", name)
		}
	}
	return nil
}

// checkValue refuses values no configuration file can hold.
func checkValue(name, value string) error {
	if strings.ContainsRune(value, 0) {
		return fmt.Errorf("invalid value for parameter %q: it contains a NUL byte", name)
	}
	return nil
}

// Set makes value the effective value of name in the main tree (see above
// for how) and returns the assignments it commented out.
func (c *Config) Set(name, value string) (commented []Entry, err error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if err := checkValue(name, value); err != nil {
		return nil, err
	}
	lines := c.lines(name)
	if len(lines) == 0 {
		main := c.files[c.Main]
		if n, text := main.commentedAssignment(name); n >= 0 {
			main.uncomment(n, text, value)
		} else {
			main.appendAssignment(name, value)
		}
		c.resolve()
		return nil, nil
	}
	active := lines[len(lines)-1]
	if active.Value != value {
		active.file.setValue(active.idx, value)
	}
	for _, p := range lines[:len(lines)-1] {
		p.file.commentOut(p.idx)
		commented = append(commented, p.Entry)
	}
	c.resolve()
	return commented, nil
}

// Remove comments out every assignment of name in the main tree and
// returns them.
func (c *Config) Remove(name string) ([]Entry, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	var out []Entry
	for _, p := range c.lines(name) {
		p.file.commentOut(p.idx)
		out = append(out, p.Entry)
	}
	c.resolve()
	return out, nil
}

// lines returns the distinct physical lines assigning name in the main
// tree, in processing order, the active one last. A file included twice
// holds one physical line for two entries.
func (c *Config) lines(name string) []placed {
	var out []placed
	for _, p := range c.entries {
		if !sameName(p.Name, name) {
			continue
		}
		for i, q := range out {
			if q.file == p.file && q.idx == p.idx {
				out = append(out[:i], out[i+1:]...)
				break
			}
		}
		out = append(out, p)
	}
	return out
}
