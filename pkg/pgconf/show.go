package pgconf

import (
	"context"
	"fmt"
	"strings"
)

// Param is one parameter as pgconf show reports it.
type Param struct {
	Name string `json:"name"` // lower case
	// Value is the value in effect on the running server (as SHOW prints
	// it); on a stopped instance, the value the files set.
	Value string `json:"value"`
	// FileValue, File and Line locate the assignment that wins in the
	// files (postgresql.auto.conf included); empty when none sets it.
	FileValue *string `json:"file_value"`
	File      string  `json:"file,omitempty"`
	Line      int     `json:"line,omitempty"`
	Context   string  `json:"context,omitempty"`
	// PendingRestart is true when the files hold a value that waits for a
	// restart (running instance only).
	PendingRestart bool `json:"pending_restart"`
}

// Show reports the named parameters, or every parameter the files set when
// names is empty. An unknown name is an error with PostgreSQL's message.
func Show(ctx context.Context, t Target, names []string) ([]Param, error) {
	c, err := Load(t.ConfigFile, t.DataDir)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		names = c.Names()
	}
	for i, n := range names {
		if err := CheckName(n); err != nil {
			return nil, err
		}
		names[i] = normName(n)
	}
	var settings map[string]pgSetting
	var contexts map[string]string
	if t.Running {
		conn, err := t.Connect(ctx)
		if err != nil {
			return nil, fmt.Errorf("cannot connect to instance %s: %w", t.Name, err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		if settings, err = readSettings(ctx, conn, names); err != nil {
			return nil, err
		}
	} else if contexts, err = describeConfig(ctx, t); err != nil {
		return nil, err
	}
	out := make([]Param, 0, len(names))
	for _, n := range names {
		p := Param{Name: n}
		conf, auto := c.Lookup(n)
		if auto != nil {
			conf = auto
		}
		if conf != nil {
			v := conf.Value
			p.FileValue, p.File, p.Line, p.Value = &v, conf.File, conf.Line, v
		}
		s, known := settings[n]
		if known {
			p.Value, p.Context, p.PendingRestart = s.current, s.context, s.pendingRestart
		} else if !t.Running {
			p.Context, known = contexts[n]
		}
		if !known && conf == nil {
			return nil, fmt.Errorf("unrecognized configuration parameter %q", n)
		}
		out = append(out, p)
	}
	return out, nil
}

// ParseAssignment splits "name=value" as given on a command line. The
// value is taken as it is, except that a value written as a quoted
// configuration-file string ('...') is unquoted.
func ParseAssignment(s string) (Change, error) {
	name, value, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok {
		return Change{}, fmt.Errorf("%q is not PARAM=VALUE", s)
	}
	if err := CheckName(name); err != nil {
		return Change{}, err
	}
	if n := matchString(value, 0); n > 0 && n == len(value) {
		value = deescape(value)
	}
	return Change{Name: name, Value: value}, nil
}
