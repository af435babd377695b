package hba

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Target is a pg_hba.conf to edit: where it is read from and written to
// (a file, or a Patroni member's YAML that Patroni turns into one), the
// connections that must keep working, and the running server's checks.
type Target struct {
	Read  func() (string, error)
	Write func(string) error
	// Probes are the connections an edit must not lock out.
	Probes []Probe
	// Errors returns what the running server finds wrong in the written
	// file (pg_hba_file_rules); nil when it is not running.
	Errors func(ctx context.Context) ([]string, error)
	// Reload makes the server load the file; nil when it is not running.
	Reload func(ctx context.Context) error
}

// ErrNoChange is returned by a change that finds nothing to do.
var ErrNoChange = errors.New("nothing to change")

// Edit applies change to the file and writes it back when change made a
// difference and no probe is locked out. When the server finds an error
// in the written file, the old file is put back and nothing is reloaded.
func Edit(ctx context.Context, t Target, change func(*File) error) error {
	text, err := t.Read()
	if err != nil {
		return err
	}
	before, err := Parse(text)
	if err != nil {
		return err
	}
	after, _ := Parse(text)
	if err := change(after); err != nil {
		return err
	}
	if err := CheckLockout(before, after, t.Probes); err != nil {
		return fmt.Errorf("%w; pg_hba.conf is unchanged", err)
	}
	if err := t.Write(after.String()); err != nil {
		return err
	}
	if t.Errors != nil {
		errs, err := t.Errors(ctx)
		if err == nil && len(errs) > 0 {
			err = fmt.Errorf("PostgreSQL refuses the new pg_hba.conf: %s", strings.Join(errs, "; "))
		}
		if err != nil {
			if werr := t.Write(text); werr != nil {
				return fmt.Errorf("%w; putting the old file back failed too: %v", err, werr)
			}
			return fmt.Errorf("%w; pg_hba.conf is unchanged", err)
		}
	}
	if t.Reload != nil {
		return t.Reload(ctx)
	}
	return nil
}
