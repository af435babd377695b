package pgconf

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/run"
)

// Target is the instance whose configuration is read or changed.
type Target struct {
	Name       string // identity used in messages, such as "15/pg1"
	ConfigFile string // postgresql.conf
	DataDir    string // holds postgresql.auto.conf
	BinDir     string // the instance's PostgreSQL binaries (postgres)
	Running    bool
	// Connect opens a superuser connection to the running instance.
	Connect func(ctx context.Context) (*pgx.Conn, error)
	// Runner runs the server binary as the instance's owner (PostgreSQL
	// refuses to run as root).
	Runner run.Runner
	// Reload makes the running server read its files again; nil means
	// SELECT pg_reload_conf() on the connection.
	Reload func(ctx context.Context) error
	// Config is the configuration as the caller already read it from
	// ConfigFile and DataDir; nil means read it. Writing checks that no
	// file changed on disk since it was read.
	Config *Config
	// Check, when set, judges a change before anything else does (and
	// before anything is written): c is the configuration as it would be,
	// names the parameters asked for or changed (lower case). Its error
	// refuses the change (ErrRefused).
	Check func(c *Config, names []string) error
	// EditedAs names the main file's new text in messages about it, for
	// ApplyEdit ("your edited copy of ..."); "" means the main file's path.
	EditedAs string
}

// load returns the target's configuration, read now unless the caller did.
func (t Target) load() (*Config, error) {
	if t.Config != nil {
		return t.Config, nil
	}
	return Load(t.ConfigFile, t.DataDir)
}

func (t Target) runner() run.Runner {
	if t.Runner == nil {
		return run.Exec{}
	}
	return t.Runner
}

// Change is one requested edit: set Name to Value, or remove it.
type Change struct {
	Name   string
	Value  string
	Remove bool
}

// Options tune Apply.
type Options struct {
	DryRun bool // validate and report, write nothing
	// Written, when set, is called once the files are written (or, on a
	// dry run, validated), before the reload: the caller can print the
	// changes ahead of the messages about reloading and restarting.
	Written func(*Result)
}

// Effect says what a change does to the instance, as PostgreSQL reports it.
type Effect string

const (
	EffectReload      Effect = "reload"            // in effect after the reload
	EffectNewSessions Effect = "new sessions only" // reloaded; existing sessions keep the old value
	EffectRestart     Effect = "restart"           // waits for a restart (pending_restart)
	EffectNone        Effect = "none"              // the value in effect does not change (e.g. 128MB vs 131072kB)
	EffectOverridden  Effect = "overridden"        // a later file (postgresql.auto.conf) wins
	EffectNextStart   Effect = "next start"        // the instance is not running
)

// ParamChange is one parameter whose value in the files changed.
type ParamChange struct {
	Name    string  `json:"name"` // lower case
	Old     *string `json:"old"`  // nil when it was not set in the files
	New     *string `json:"new"`  // nil when it is no longer set
	File    string  `json:"file"` // where the new value is, or where the removed one was
	Line    int     `json:"line"`
	Context string  `json:"context"` // pg_settings.context
	Effect  Effect  `json:"effect"`
	// OverriddenBy is the assignment that wins over this one, or nil.
	OverriddenBy *Entry `json:"overridden_by"`
}

// Result is what Apply did.
type Result struct {
	Instance  string        `json:"instance"`
	Changes   []ParamChange `json:"changes"`
	Commented []Entry       `json:"commented"` // other assignments commented out
	Files     []string      `json:"files"`     // files written (would be, on a dry run)
	DryRun    bool          `json:"dry_run"`
	Running   bool          `json:"running"`
	Reloaded  bool          `json:"reloaded"`
	// RolledBack is set when the server rejected the change at reload and
	// the files were restored.
	RolledBack bool `json:"-"`
	// Restart lists the changed parameters that wait for a restart.
	Restart []string `json:"restart"`
	// PendingRestart is true when any parameter of the instance waits for
	// a restart, this change or an earlier one.
	PendingRestart bool `json:"pending_restart"`
}

// ErrRolledBack is returned when the server rejected a change at reload:
// the files were restored byte for byte and reloaded again.
var ErrRolledBack = errors.New("rolled back")

// Apply sets and removes parameters in the configuration of t, validates
// the result with the server binary before writing anything, writes the
// files atomically, and on a running instance reloads it and reports what
// PostgreSQL says about each change. A refused change leaves every file
// byte-identical (ErrRefused); a change the server rejects at reload is
// rolled back (ErrRolledBack). Apply never restarts the instance: Result
// says when a restart is needed.
func Apply(ctx context.Context, t Target, changes []Change, opts Options) (*Result, error) {
	c, err := t.load()
	if err != nil {
		return nil, err
	}
	before := c.effective()
	var commented []Entry
	asked := make([]string, len(changes))
	for n, ch := range changes {
		asked[n] = normName(ch.Name)
	}
	for _, ch := range changes {
		if ch.Remove {
			var removed []Entry
			if removed, err = c.Remove(ch.Name); err == nil && len(removed) == 0 {
				notSet(ctx, c, ch.Name)
			}
		} else {
			var dup []Entry
			dup, err = c.Set(ch.Name, ch.Value)
			commented = append(commented, dup...)
		}
		if err != nil {
			return nil, err
		}
	}
	return commit(ctx, t, c, before, commented, asked, opts)
}

// notSet says that there is nothing to remove, and where the value comes
// from when ALTER SYSTEM set it.
func notSet(ctx context.Context, c *Config, name string) {
	msg := fmt.Sprintf("parameter %s is not set in %s or the files it includes", normName(name), c.Main)
	if _, auto := c.Lookup(name); auto != nil {
		msg += fmt.Sprintf("; %s line %d sets it: ALTER SYSTEM RESET %s removes it", auto.File, auto.Line, normName(name))
	}
	logging.From(ctx).Info(msg)
}

// ApplyEdit is Apply for a new version of the main file, such as the one
// a person saved from an editor.
func ApplyEdit(ctx context.Context, t Target, main []byte, opts Options) (*Result, error) {
	c, err := t.load()
	if err != nil {
		return nil, err
	}
	before := c.effective()
	if err := c.Replace(c.Main, main); err != nil {
		return nil, err
	}
	res, err := commit(ctx, t, c, before, nil, nil, opts)
	var refused *RefusedError
	if t.EditedAs != "" && errors.As(err, &refused) {
		// Line numbers in the new text are the edited copy's, not those
		// of the file still on disk.
		for n, m := range refused.Msgs {
			refused.Msgs[n] = strings.ReplaceAll(m, `in file "`+c.Main+`" line`, "in "+t.EditedAs+", line")
		}
	}
	return res, err
}

// effective maps lower-case names to their winning assignment in the main tree.
func (c *Config) effective() map[string]Entry {
	m := map[string]Entry{}
	for _, p := range c.entries {
		m[normName(p.Name)] = p.Entry
	}
	return m
}

// diff lists the parameters whose effective value in the main tree changed.
func diff(before, after map[string]Entry) []ParamChange {
	var out []ParamChange
	for name, b := range before {
		if a, ok := after[name]; !ok {
			old := b.Value
			out = append(out, ParamChange{Name: name, Old: &old, File: b.File, Line: b.Line})
		} else if a.Value != b.Value {
			old, nv := b.Value, a.Value
			out = append(out, ParamChange{Name: name, Old: &old, New: &nv, File: a.File, Line: a.Line})
		}
	}
	for name, a := range after {
		if _, ok := before[name]; !ok {
			nv := a.Value
			out = append(out, ParamChange{Name: name, New: &nv, File: a.File, Line: a.Line})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func commit(ctx context.Context, t Target, c *Config, before map[string]Entry, commented []Entry, asked []string, opts Options) (*Result, error) {
	res := &Result{Instance: t.Name, Changes: diff(before, c.effective()), Commented: append([]Entry{}, commented...),
		Files: []string{}, DryRun: opts.DryRun, Running: t.Running, Restart: []string{}}
	if t.Check != nil {
		names := asked
		for _, ch := range res.Changes {
			if !slices.Contains(names, ch.Name) {
				names = append(names, ch.Name)
			}
		}
		if err := t.Check(c, names); err != nil {
			return res, &RefusedError{Msgs: []string{err.Error()}}
		}
	}
	log := logging.From(ctx)
	files := c.Changed()
	for _, f := range files {
		res.Files = append(res.Files, f.Path)
	}
	if len(files) == 0 {
		log.Info(fmt.Sprintf("instance %s: nothing to change", t.Name))
		return res, nil
	}
	conn, settings, err := check(ctx, t, c, res, opts)
	if conn != nil {
		defer conn.Close(context.WithoutCancel(ctx))
	}
	if err != nil {
		return res, err
	}
	predict(res, c)
	if !opts.DryRun {
		if err := writeAll(files); err != nil {
			return res, err
		}
	}
	if opts.Written != nil {
		opts.Written(res)
	}
	if opts.DryRun {
		return res, nil
	}
	for _, e := range commented {
		log.Info(fmt.Sprintf("commented out %s = %s in %s line %d", e.Name, quote(e.Value), e.File, e.Line))
	}
	if !t.Running {
		log.Info(fmt.Sprintf("instance %s is not running: the changes take effect at its next start", t.Name))
		return res, nil
	}
	if r := namesWith(res, EffectReload, EffectNewSessions); len(r) > 0 {
		log.Info(fmt.Sprintf("instance %s needs reload due to parameter changes: %s", t.Name, strings.Join(r, ", ")))
	}
	err = reloadAndWait(ctx, t, conn)
	if err == nil {
		res.Reloaded = true
		err = verdict(ctx, t, conn, res, settings)
	}
	if err != nil {
		var rej *rejectedError
		if errors.As(err, &rej) {
			res.RolledBack = true
			return res, rollback(ctx, t, c, conn, files, rej)
		}
		return res, err
	}
	report(ctx, t, res)
	return res, nil
}

// check classifies the changes and validates the configuration. On a
// running instance it returns the connection for what follows, and the
// settings before the change.
func check(ctx context.Context, t Target, c *Config, res *Result, opts Options) (*pgx.Conn, map[string]pgSetting, error) {
	if err := startable(t.DataDir, c, res.Changes); err != nil {
		return nil, nil, err
	}
	// postgres -C takes tens of milliseconds, as long as connecting does.
	// Where a reload will check the result (see quick.go), values
	// pg_settings fully describes skip it; otherwise both run at once.
	var validated chan error
	start := func() {
		validated = make(chan error, 1)
		go func() { validated <- validate(ctx, t, c) }()
	}
	quick := t.Running && !opts.DryRun && len(c.Errors()) == 0
	if !quick {
		start()
	}
	conn, settings, clean, err := classify(ctx, t, res)
	if err == nil && validated == nil && (!clean || !quickAccept(res, settings)) {
		start()
	}
	if validated != nil {
		if verr := <-validated; err == nil {
			err = verr
		}
	}
	return conn, settings, err
}

// classify fills the context of each change: from pg_settings on a running
// instance (the connection is returned for what follows, and whether the
// server reads its files cleanly today), from postgres --describe-config on
// a stopped one.
func classify(ctx context.Context, t Target, res *Result) (*pgx.Conn, map[string]pgSetting, bool, error) {
	names := make([]string, len(res.Changes))
	for i, ch := range res.Changes {
		names[i] = ch.Name
	}
	if !t.Running {
		desc, err := describeConfig(ctx, t)
		if err != nil {
			return nil, nil, false, err
		}
		for i := range res.Changes {
			res.Changes[i].Context = contextOf(desc, res.Changes[i].Name)
		}
		return nil, nil, false, nil
	}
	conn, err := t.Connect(ctx)
	if err != nil {
		return nil, nil, false, fmt.Errorf("cannot connect to instance %s: %w", t.Name, err)
	}
	b := &pgx.Batch{}
	b.Queue(settingsOrPendingSQL, names)
	b.Queue(fileSettingsSQL)
	b.Queue("SELECT current_setting('config_file')")
	br := conn.SendBatch(ctx, b)
	defer br.Close()
	settings, err := scanSettings(br.Query())
	if err != nil {
		return conn, nil, false, err
	}
	files, err := scanFileSettings(br.Query())
	if err != nil {
		return conn, nil, false, err
	}
	var reads string
	if err := br.QueryRow().Scan(&reads); err != nil {
		return conn, nil, false, fmt.Errorf("cannot read config_file: %w", err)
	}
	if !samePath(reads, t.ConfigFile) {
		return conn, nil, false, fmt.Errorf("instance %s reads its configuration from %s, not %s: refusing to edit a file the server does not read", t.Name, reads, t.ConfigFile)
	}
	contexts := map[string]string{}
	for n, s := range settings {
		contexts[n] = s.context
	}
	for i := range res.Changes {
		res.Changes[i].Context = contextOf(contexts, res.Changes[i].Name)
	}
	return conn, settings, clean(files, settings), nil
}

// contextOf returns the context of name; a name the server does not list
// and that has a dot is a custom parameter, which takes a reload.
func contextOf(contexts map[string]string, name string) string {
	if c, ok := contexts[name]; ok {
		return c
	}
	if strings.Contains(name, ".") {
		return "user"
	}
	return ""
}

// predict fills the effects the contexts announce, before the server is asked.
func predict(res *Result, c *Config) {
	for i := range res.Changes {
		ch := &res.Changes[i]
		_, auto := c.Lookup(ch.Name)
		switch {
		case auto != nil:
			ch.Effect, ch.OverriddenBy = EffectOverridden, auto
		case !res.Running:
			ch.Effect = EffectNextStart
		case ch.Context == "postmaster":
			ch.Effect = EffectRestart
		case ch.Context == "backend" || ch.Context == "superuser-backend":
			ch.Effect = EffectNewSessions
		default:
			ch.Effect = EffectReload
		}
	}
}

func namesWith(res *Result, effects ...Effect) []string {
	var out []string
	for _, ch := range res.Changes {
		for _, e := range effects {
			if ch.Effect == e {
				out = append(out, ch.Name)
			}
		}
	}
	return out
}

// writeAll writes every changed file; if one fails, those already written
// are put back.
func writeAll(files []FileChange) error {
	for i, f := range files {
		if err := writeFile(f.Path, f.New, f.Old); err != nil {
			for _, done := range files[:i] {
				_ = writeFile(done.Path, done.Old, done.New)
			}
			return err
		}
	}
	return nil
}

func report(ctx context.Context, t Target, res *Result) {
	log := logging.From(ctx)
	for _, ch := range res.Changes {
		switch ch.Effect {
		case EffectNone:
			log.Info(fmt.Sprintf("parameter %s: the value in effect does not change", ch.Name))
		case EffectNewSessions:
			log.Info(fmt.Sprintf("parameter %s: the new value reaches new sessions only", ch.Name))
		case EffectOverridden:
			o := ch.OverriddenBy
			log.Warn(fmt.Sprintf("parameter %s is also set in %s line %d, which wins: this change has no effect until ALTER SYSTEM RESET %s",
				ch.Name, o.File, o.Line, ch.Name))
		}
	}
	if len(res.Restart) > 0 {
		log.Warn(fmt.Sprintf("instance %s needs restart due to parameter changes: %s", t.Name, strings.Join(res.Restart, ", ")))
	}
}
