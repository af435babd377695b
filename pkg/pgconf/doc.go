// Package pgconf reads and changes PostgreSQL's configuration files the way
// the server reads them, and reports what PostgreSQL itself says about a
// change.
//
// Files: Parse and File.Bytes keep a file byte for byte (comments, blank
// lines, order, quoting); the lexer is guc-file.l's, so syntax errors carry
// the server's wording. Load follows include, include_dir and
// include_if_exists and adds postgresql.auto.conf, read last; Config.Lookup
// says which assignment wins. Config.Set replaces the active line in place
// and comments out the other assignments of the name (returned so callers
// can say so); with none it uncomments the sample file's line or appends.
// Config.Remove comments out every assignment. postgresql.auto.conf is
// never edited.
//
// Instances: a Target describes one instance (main file, data directory,
// binaries, running or not, how to connect, a run.Runner acting as the
// instance's owner). Show reports parameters; Apply and ApplyEdit change
// them:
//
//	res, err := pgconf.Apply(ctx, target, []pgconf.Change{{Name: "work_mem", Value: "8MB"}}, pgconf.Options{})
//	// errors.Is(err, pgconf.ErrRefused): PostgreSQL's message, nothing written
//	// errors.Is(err, pgconf.ErrRolledBack): rejected at reload, files restored
//	// res.Changes[i].Effect: reload, new sessions only, restart, none, overridden, next start
//	// res.Restart: what waits for a restart; Apply never restarts
//
// Validation is PostgreSQL's: postgres -C on a candidate file (validate.go),
// with a fast path for values pg_settings proves valid when a reload checks
// them (quick.go). After a reload, Apply waits for pg_conf_load_time() to
// move and reads pending_restart, pg_settings and pg_file_settings
// (verdict.go). Progress goes to logging.From(ctx): "INFO instance 15/pg1
// needs reload due to parameter changes: work_mem", "WARNING instance 15/pg1
// needs restart due to parameter changes: shared_buffers". DESIGN.md says
// why.
package pgconf
