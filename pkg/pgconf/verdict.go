package pgconf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgherd/pgherd/pkg/logging"
)

// rejectedError lists the changes the server could not apply at reload.
type rejectedError struct{ msgs []string }

func (e *rejectedError) Error() string { return strings.Join(e.msgs, "; ") }

// verdict replaces the predicted effects by what the server says once it
// has loaded the new files: pg_file_settings tells which assignment wins
// and whether it could be applied; pending_restart tells whether a
// postmaster parameter really changed (128MB and 131072kB are the same
// value); comparing settings before and after tells whether a reloadable
// value changed at all.
func verdict(ctx context.Context, t Target, conn *pgx.Conn, res *Result, before map[string]pgSetting) error {
	names := make([]string, len(res.Changes))
	for i, ch := range res.Changes {
		names[i] = ch.Name
	}
	b := &pgx.Batch{}
	b.Queue(settingsOrPendingSQL, names)
	b.Queue(fileSettingsSQL)
	br := conn.SendBatch(ctx, b)
	after, err := scanSettings(br.Query())
	var files []fileSetting
	if err == nil {
		files, err = scanFileSettings(br.Query())
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	for _, s := range after {
		res.PendingRestart = res.PendingRestart || s.pendingRestart
	}
	var rejected []string
	var fresh map[string]pgSetting // as a new session sees them
	for i := range res.Changes {
		ch := &res.Changes[i]
		s, known := after[ch.Name]
		var winner *fileSetting
		for j := range files {
			if files[j].name == ch.Name {
				winner = &files[j]
			}
		}
		ours := winner != nil && ch.New != nil && winner.line == ch.Line && samePath(winner.file, ch.File)
		switch {
		// For a postmaster parameter the server records a valid new value
		// as an error too ("cannot be changed without restarting"), and
		// sets pending_restart; quick.go makes sure pending_restart was
		// false before, or that postgres -C validated the value.
		case ours && winner.err != "" && !(s.context == "postmaster" && s.pendingRestart):
			rejected = append(rejected, fmt.Sprintf("%s = %s in %s line %d: %s", ch.Name, quote(*ch.New), ch.File, ch.Line, winner.err))
		case winner != nil && !ours:
			ch.Effect = EffectOverridden
			ch.OverriddenBy = &Entry{File: winner.file, Line: winner.line, Name: ch.Name, Value: winner.setting}
		case !known:
			ch.Effect = EffectReload // a custom parameter no module defines yet
		case s.context == "postmaster":
			ch.Effect = EffectNone
			if s.pendingRestart {
				ch.Effect = EffectRestart
				res.Restart = append(res.Restart, ch.Name)
			}
		case s.context == "backend" || s.context == "superuser-backend":
			if fresh == nil {
				if fresh, err = newSessionSettings(ctx, t, names); err != nil {
					return err
				}
			}
			ch.Effect = EffectNone
			if fresh[ch.Name].setting != before[ch.Name].setting {
				ch.Effect = EffectNewSessions
			}
		default:
			ch.Effect = EffectNone
			if s.setting != before[ch.Name].setting {
				ch.Effect = EffectReload
			}
		}
	}
	if len(rejected) > 0 {
		return &rejectedError{msgs: rejected}
	}
	return nil
}

// newSessionSettings reads settings through a new connection: parameters
// of the backend contexts change only for sessions started after a reload.
func newSessionSettings(ctx context.Context, t Target, names []string) (map[string]pgSetting, error) {
	conn, err := t.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to instance %s: %w", t.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return readSettings(ctx, conn, names)
}

// rollback puts every file back byte for byte and reloads again. The
// server's log has the reason, pg_file_settings only "setting could not be
// applied": postgres -C on the rejected configuration (which it reads from
// memory, not from the restored files) gives the server's own words.
func rollback(ctx context.Context, t Target, c *Config, conn *pgx.Conn, files []FileChange, rej *rejectedError) error {
	var errs []error
	for _, f := range files {
		if err := writeFile(f.Path, f.Old, f.New); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("PostgreSQL rejected %v at reload, and restoring the files failed: %w", rej, errors.Join(errs...))
	}
	if err := reloadAndWait(ctx, t, conn); err != nil {
		return fmt.Errorf("PostgreSQL rejected %v at reload; the files were restored but the second reload failed: %w", rej, err)
	}
	logging.From(ctx).Warn(fmt.Sprintf("instance %s: PostgreSQL rejected the change at reload; the configuration files were restored and reloaded", t.Name))
	var refused *RefusedError
	if errors.As(validate(ctx, t, c), &refused) {
		return fmt.Errorf("%w: %s; the configuration files were restored and reloaded", ErrRolledBack, refused)
	}
	return fmt.Errorf("%w: PostgreSQL rejected %v (see the server log); the configuration files were restored and reloaded", ErrRolledBack, rej)
}

// samePath tells whether two paths name the same file, as the server may
// spell a path differently (symbolic links, "..").
func samePath(a, b string) bool {
	if a == b {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}
