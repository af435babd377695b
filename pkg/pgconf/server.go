package pgconf

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgSetting is a row of pg_settings as this session sees it.
type pgSetting struct {
	name, setting, context, current string
	vartype, unit, min, max         string
	enumvals                        []string
	pendingRestart                  bool
}

// settingsSQL reads pg_settings for names ($1, lower case).
const settingsSQL = `SELECT name, setting, context, current_setting(name), vartype,
	coalesce(unit, ''), coalesce(min_val, ''), coalesce(max_val, ''), enumvals, pending_restart
	FROM pg_settings WHERE lower(name) = ANY($1)`

// settingsOrPendingSQL is settingsSQL plus every parameter that waits for
// a restart: one pass over pg_settings answers both.
const settingsOrPendingSQL = settingsSQL + ` OR pending_restart`

// readSettings reads pg_settings for names (lower case), keyed by lower-case name.
func readSettings(ctx context.Context, conn *pgx.Conn, names []string) (map[string]pgSetting, error) {
	rows, err := conn.Query(ctx, settingsSQL, names)
	return scanSettings(rows, err)
}

func scanSettings(rows pgx.Rows, err error) (map[string]pgSetting, error) {
	if err != nil {
		return nil, fmt.Errorf("cannot read pg_settings: %w", err)
	}
	out := map[string]pgSetting{}
	for rows.Next() {
		var s pgSetting
		if err := rows.Scan(&s.name, &s.setting, &s.context, &s.current, &s.vartype,
			&s.unit, &s.min, &s.max, &s.enumvals, &s.pendingRestart); err != nil {
			return nil, fmt.Errorf("cannot read pg_settings: %w", err)
		}
		out[normName(s.name)] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read pg_settings: %w", err)
	}
	return out, nil
}

// fileSetting is a row of pg_file_settings: what the server reads in the
// files right now, including what it could not apply.
type fileSetting struct {
	file    string
	line    int
	name    string // lower case
	setting string
	applied bool
	err     string
}

const fileSettingsSQL = `SELECT coalesce(sourcefile, ''), coalesce(sourceline, 0),
	coalesce(name, ''), coalesce(setting, ''), applied, coalesce(error, '')
	FROM pg_file_settings ORDER BY seqno`

func scanFileSettings(rows pgx.Rows, err error) ([]fileSetting, error) {
	if err != nil {
		return nil, fmt.Errorf("cannot read pg_file_settings: %w", err)
	}
	var out []fileSetting
	for rows.Next() {
		var s fileSetting
		if err := rows.Scan(&s.file, &s.line, &s.name, &s.setting, &s.applied, &s.err); err != nil {
			return nil, fmt.Errorf("cannot read pg_file_settings: %w", err)
		}
		s.name = normName(s.name)
		out = append(out, s)
	}
	return out, rows.Err()
}

// reloadAndWait makes the server read its files again and returns once
// this session has loaded them too. pg_reload_conf() only signals the
// postmaster; the postmaster reloads, then signals every backend, and a
// backend reloads before its next command. pg_conf_load_time() is the time
// this backend last loaded the files, so once it moves, the postmaster has
// finished and what this session reads (pending_restart, setting) is
// what PostgreSQL now says. Waiting is bounded by ctx and a deadline.
func reloadAndWait(ctx context.Context, t Target, conn *pgx.Conn) error {
	var before time.Time
	if t.Reload != nil {
		if err := conn.QueryRow(ctx, "SELECT pg_conf_load_time()").Scan(&before); err != nil {
			return fmt.Errorf("cannot read pg_conf_load_time(): %w", err)
		}
		if err := t.Reload(ctx); err != nil {
			return fmt.Errorf("cannot reload instance %s: %w", t.Name, err)
		}
	} else if err := conn.QueryRow(ctx, "SELECT pg_conf_load_time(), pg_reload_conf()").Scan(&before, nil); err != nil {
		// One statement: this backend reloads only between commands, so
		// the load time read here is the one before the reload.
		return fmt.Errorf("cannot reload instance %s: %w", t.Name, err)
	}
	start := time.Now()
	for {
		var now time.Time
		if err := conn.QueryRow(ctx, "SELECT pg_conf_load_time()").Scan(&now); err != nil {
			return fmt.Errorf("cannot read pg_conf_load_time(): %w", err)
		}
		if now.After(before) {
			return nil
		}
		// A file the server cannot read or parse makes it skip the whole
		// reload, and the load time never moves: say why without waiting.
		if time.Since(start) > 100*time.Millisecond {
			if msgs, err := fileErrors(ctx, conn); err != nil || len(msgs) > 0 {
				if err != nil {
					return err
				}
				return &rejectedError{msgs: msgs}
			}
		}
		if time.Since(start) > reloadTimeout {
			return fmt.Errorf("instance %s did not load its configuration within %s of the reload", t.Name, reloadTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

const reloadTimeout = 10 * time.Second

// fileErrors returns the errors of pg_file_settings that concern whole
// files (unreadable, syntax error, bad include) rather than one value.
func fileErrors(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT coalesce(sourcefile, ''), coalesce(sourceline, 0), error
		FROM pg_file_settings WHERE name IS NULL AND error IS NOT NULL ORDER BY seqno`)
	if err != nil {
		return nil, fmt.Errorf("cannot read pg_file_settings: %w", err)
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var file, msg string
		var line int
		if err := rows.Scan(&file, &line, &msg); err != nil {
			return nil, err
		}
		msgs = append(msgs, fmt.Sprintf("%s in file \"%s\" line %d", msg, file, line))
	}
	return msgs, rows.Err()
}

// clean reports whether the server can apply everything in its files
// today, apart from values that wait for a restart. The fast path of
// quick.go relies on the reload to catch what it cannot see; it needs a
// configuration the server accepts to start from. settings must hold every
// parameter that waits for a restart (settingsOrPendingSQL).
func clean(files []fileSetting, settings map[string]pgSetting) bool {
	for _, f := range files {
		if s, ok := settings[f.name]; f.err != "" && !(ok && s.context == "postmaster" && s.pendingRestart) {
			return false
		}
	}
	return true
}
