package pgconf

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Param is one parameter as pgconf show reports it.
type Param struct {
	Name string `json:"name"` // lower case
	// Value is the value in effect on the running server (as SHOW prints
	// it); on a stopped instance, the value the files set, or nil.
	Value *string `json:"value"`
	// SetIn is the assignment that wins in the files (postgresql.auto.conf
	// included), or nil when none sets the parameter.
	SetIn   *Entry `json:"set_in"`
	Context string `json:"context"`
	// PendingRestart is true when the files hold a value that waits for a
	// restart (running instance only).
	PendingRestart bool `json:"pending_restart"`
}

// Show reports the named parameters, or every parameter the files set when
// names is empty. An unknown name is an error with PostgreSQL's message.
func Show(ctx context.Context, t Target, names []string) ([]Param, error) {
	c, err := t.load()
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		names = c.Names()
	}
	names = slices.Clone(names)
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
			p.SetIn, p.Value = conf, &v
		}
		s, known := settings[n]
		if known {
			p.Value, p.Context, p.PendingRestart = &s.current, s.context, s.pendingRestart
		} else if !t.Running {
			_, known = contexts[n]
		}
		if !known && conf == nil {
			return nil, fmt.Errorf("unrecognized configuration parameter \"%s\"", n)
		}
		if !known || !t.Running {
			p.Context = contextOf(contexts, n)
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
