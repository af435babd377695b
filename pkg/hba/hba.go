// Package hba reads and edits pg_hba.conf keeping every comment, blank
// line and entry in its place, validates new entries, and tells which
// entry a connection would match, so that an edit that would lock pgherd
// or Patroni out is refused before it is written.
package hba

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
)

// Entry is one rule of pg_hba.conf. Database and User are the field as
// written (comma-separated, maybe quoted); Address is "" for local.
type Entry struct {
	Type     string `json:"type"`
	Database string `json:"database"`
	User     string `json:"user"`
	Address  string `json:"address,omitempty"`
	Method   string `json:"method"`
	Options  string `json:"options,omitempty"`
	Line     int    `json:"line"`
}

// File is pg_hba.conf as lines: each keeps its text; entries are parsed.
type File struct {
	lines []line
}

type line struct {
	raw   string
	entry *Entry
}

// Types are the connection types pg_hba.conf knows.
var Types = []string{"local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc"}

// Methods are the authentication methods PostgreSQL 15 knows.
var Methods = []string{"trust", "reject", "scram-sha-256", "md5", "password", "gss", "sspi", "ident", "peer", "ldap", "radius", "cert", "pam", "bsd"}

// Parse reads pg_hba.conf text. A line it cannot read is an error naming
// the line.
func Parse(text string) (*File, error) {
	f := &File{}
	raws := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if text == "" {
		raws = nil
	}
	for n, raw := range raws {
		toks, err := tokens(raw)
		if err != nil {
			return nil, fmt.Errorf("pg_hba.conf line %d: %w", n+1, err)
		}
		l := line{raw: raw}
		if len(toks) > 0 {
			e, err := entryOf(toks)
			if err != nil {
				return nil, fmt.Errorf("pg_hba.conf line %d: %w", n+1, err)
			}
			e.Line = n + 1
			l.entry = e
		}
		f.lines = append(f.lines, l)
	}
	return f, nil
}

// tokens splits a line on blanks, keeping double-quoted parts (with ""
// for a quote) together and stopping at a # outside quotes.
func tokens(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inQuote, has := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			cur.WriteByte(c)
			has = true
			inQuote = !inQuote
		case inQuote:
			cur.WriteByte(c)
		case c == '#':
			i = len(s)
		case c == ' ' || c == '\t' || c == '\r':
			if has {
				out = append(out, cur.String())
				cur.Reset()
				has = false
			}
		default:
			cur.WriteByte(c)
			has = true
		}
	}
	if inQuote {
		return nil, errors.New("unterminated quote")
	}
	if has {
		out = append(out, cur.String())
	}
	return out, nil
}

func entryOf(t []string) (*Entry, error) {
	if !slices.Contains(Types, t[0]) {
		return nil, fmt.Errorf("unknown connection type %q", t[0])
	}
	e := &Entry{Type: t[0]}
	need := 4
	if e.Type != "local" {
		need = 5
	}
	if len(t) < need {
		return nil, fmt.Errorf("%q is missing fields", strings.Join(t, " "))
	}
	e.Database, e.User = t[1], t[2]
	rest := t[3:]
	if e.Type != "local" {
		e.Address, rest = rest[0], rest[1:]
		// The old form: an IP address, then a mask.
		if net.ParseIP(e.Address) != nil && len(rest) > 1 && net.ParseIP(rest[0]) != nil {
			e.Address, rest = e.Address+" "+rest[0], rest[1:]
		}
	}
	e.Method = rest[0]
	e.Options = strings.Join(rest[1:], " ")
	return e, nil
}

// Entries returns the entries in file order.
func (f *File) Entries() []Entry {
	out := []Entry{}
	for _, l := range f.lines {
		if l.entry != nil {
			out = append(out, *l.entry)
		}
	}
	return out
}

// String is the file's text: untouched lines exactly as read.
func (f *File) String() string {
	var b strings.Builder
	for _, l := range f.lines {
		b.WriteString(l.raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// Lines returns the entries' lines as Patroni's postgresql.pg_hba list
// holds them: comments and blank lines left out.
func (f *File) Lines() []string {
	var out []string
	for _, l := range f.lines {
		if l.entry != nil {
			out = append(out, l.raw)
		}
	}
	return out
}

// Format writes e as a pg_hba.conf line.
func (e Entry) Format() string {
	fields := []string{fmt.Sprintf("%-9s", e.Type), fmt.Sprintf("%-12s", e.Database), fmt.Sprintf("%-12s", e.User)}
	if e.Type != "local" {
		fields = append(fields, fmt.Sprintf("%-18s", e.Address))
	} else {
		fields = append(fields, fmt.Sprintf("%-18s", ""))
	}
	fields = append(fields, e.Method)
	if e.Options != "" {
		fields = append(fields, e.Options)
	}
	return strings.TrimRight(strings.Join(fields, " "), " ")
}

// same reports whether two entries are the same rule (line aside).
func (e Entry) same(o Entry) bool {
	e.Line, o.Line = 0, 0
	return e == o
}

// Has reports whether the file holds e.
func (f *File) Has(e Entry) bool {
	for _, x := range f.Entries() {
		if x.same(e) {
			return true
		}
	}
	return false
}

// Add puts e after the last entry (first: before the first one; a rule
// that comes first wins), and returns false when the file already holds
// it.
func (f *File) Add(e Entry, first bool) bool {
	if f.Has(e) {
		return false
	}
	l := line{raw: e.Format(), entry: &e}
	at := len(f.lines)
	for i, x := range f.lines {
		if x.entry != nil {
			if first {
				at = i
				break
			}
			at = i + 1
		}
	}
	f.lines = slices.Insert(f.lines, at, l)
	f.renumber()
	return true
}

// Remove deletes the entries that are e (its Method and Options only
// when given) and returns how many it removed.
func (f *File) Remove(e Entry) int {
	n := 0
	f.lines = slices.DeleteFunc(f.lines, func(l line) bool {
		x := l.entry
		if x == nil || x.Type != e.Type || x.Database != e.Database || x.User != e.User || x.Address != e.Address ||
			(e.Method != "" && x.Method != e.Method) || (e.Options != "" && x.Options != e.Options) {
			return false
		}
		n++
		return true
	})
	f.renumber()
	return n
}

func (f *File) renumber() {
	for i := range f.lines {
		if f.lines[i].entry != nil {
			f.lines[i].entry.Line = i + 1
		}
	}
}
