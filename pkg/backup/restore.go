package backup

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/postgres"
	"github.com/pgherd/pgherd/pkg/run"
)

// Target is the point a restore recovers to: exactly one of Label (the
// end of that backup), Time (the last commit at or before it) or Latest
// (the end of the archive).
type Target struct {
	Label  string
	Time   time.Time
	Latest bool
}

// RestoreRequest says what to restore and how to run the server.
type RestoreRequest struct {
	Target Target
	// Stop stops the server; Start starts it and returns once it accepts
	// connections (or fails with the end of its log); LastLog returns the
	// end of the server's log, for a server that stops while recovering;
	// LastFatal the server log's last FATAL message ("" for none).
	Stop      func(context.Context) error
	Start     func(context.Context) error
	LastLog   func() string
	LastFatal func() string
	// Now is the current time (tests set it); zero: time.Now().
	Now time.Time
}

// RestoreResult says what a restore did.
type RestoreResult struct {
	Backup Backup
	// Recovery is what PostgreSQL recovered to, in words.
	Recovery string
}

// walReserve is room for the WAL segments recovery writes besides the
// restored files.
const walReserve = 3 * 16 << 20

// PromoteTimeout bounds the wait for a restored server to end recovery.
var PromoteTimeout = 10 * time.Minute

// plan chooses the backup set and pgBackRest's recovery options for a
// target, refusing one the repository cannot reach: a time before the
// first backup was consistent, or after now (WAL that does not exist yet).
func plan(backups []Backup, t Target, now time.Time) (Backup, []string, string, error) {
	if len(backups) == 0 {
		return Backup{}, nil, "", ErrNoBackup
	}
	last := backups[len(backups)-1]
	switch {
	case t.Label != "":
		for _, b := range backups {
			if b.Label == t.Label {
				return b, []string{"--set=" + b.Label, "--type=immediate", "--target-action=promote"}, "the end of backup " + b.Label, nil
			}
		}
		return Backup{}, nil, "", fmt.Errorf("no backup %s: see 'pgherd instance backups' for the labels", t.Label)
	case t.Latest:
		return last, []string{"--set=" + last.Label, "--type=default"}, "the end of the archived WAL", nil
	}
	if t.Time.After(now) {
		return Backup{}, nil, "", fmt.Errorf("target %s is after the last archived WAL (it is in the future): choose an earlier time, or --latest", stamp(t.Time))
	}
	// pgBackRest records whole seconds: a backup ending within the
	// target's second may not be consistent by then.
	var chosen *Backup
	for k := range backups {
		if !backups[k].Stop.Add(time.Second).After(t.Time) {
			chosen = &backups[k]
		}
	}
	if chosen == nil {
		return Backup{}, nil, "", fmt.Errorf("target %s is before the end of the first backup (%s, ended %s): nothing can be restored to it; choose a later time", stamp(t.Time), backups[0].Label, stamp(backups[0].Stop))
	}
	return *chosen, []string{"--set=" + chosen.Label, "--type=time", "--target=" + stamp(t.Time), "--target-action=promote"}, stamp(t.Time), nil
}

// stamp renders a time as PostgreSQL's recovery_target_time reads it.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.999999") + "+00" }

// RestorePlan is a target resolved against the repository: the backup
// to restore and how PostgreSQL recovers from it.
type RestorePlan struct {
	Backup Backup
	// Recovery is what PostgreSQL recovers to, in words.
	Recovery string
	args     []string
}

// PlanRestore resolves the target against the repository before anything
// changes: the backup exists (a time target: it is neither in the future
// nor before the end of the first backup), and it fits beside the current
// data directory. When the server runs (for a Patroni member: the
// cluster's primary on this host) and the target is a time, pgBackRest's
// check archives the current WAL first, so that a target a moment ago is
// in the archive; broken archiving refuses the restore.
func (e *Env) PlanRestore(ctx context.Context, i Instance, t Target, running bool, now time.Time) (RestorePlan, error) {
	if running && !t.Time.IsZero() {
		logging.From(ctx).Info("archiving the current WAL of " + i.ID)
		if err := e.Check(ctx, i); err != nil {
			return RestorePlan{}, fmt.Errorf("WAL archiving of %s is broken, so the restore could not reach %s: %w; nothing was changed", i.ID, stamp(t.Time), err)
		}
	}
	backups, err := e.Backups(ctx, i)
	if err != nil {
		return RestorePlan{}, err
	}
	if now.IsZero() {
		now = time.Now()
	}
	b, args, to, err := plan(backups, t, now)
	if errors.Is(err, ErrNoBackup) {
		return RestorePlan{}, fmt.Errorf("%s has no backup to restore: take one with 'pgherd instance backup %s'", i.what(), i.ID)
	}
	if err != nil {
		return RestorePlan{}, err
	}
	if err := CheckSpace(i, b.Size); err != nil {
		return RestorePlan{}, err
	}
	return RestorePlan{Backup: b, Recovery: to, args: args}, nil
}

// Restore replaces the instance's data with a backup recovered to the
// target. The server is stopped first (the caller has confirmed it). The
// backup is restored into new directories beside the data and WAL
// directories, which replace them only once the server has recovered and
// accepts writes: when any step fails, the previous directories are put
// back (and the server started again if it ran), so a failed restore
// changes nothing but the time spent.
func (e *Env) Restore(ctx context.Context, i Instance, req RestoreRequest) (RestoreResult, error) {
	_, running := postgres.Running(i.DataDir)
	p, err := e.PlanRestore(ctx, i, req.Target, running, req.Now)
	if err != nil {
		return RestoreResult{}, err
	}
	if running {
		if err := req.Stop(ctx); err != nil {
			return RestoreResult{}, err
		}
	}
	restartOld := func(err error) error {
		if running {
			if serr := req.Start(context.WithoutCancel(ctx)); serr != nil {
				return fmt.Errorf("%w; starting it again failed too: %v", err, serr)
			}
		}
		return err
	}
	r, err := e.RestoreData(ctx, i, p)
	if err != nil {
		return RestoreResult{}, restartOld(err)
	}
	logging.From(ctx).Info(fmt.Sprintf("starting %s and recovering to %s", i.ID, p.Recovery))
	err = req.Start(ctx)
	if err == nil {
		err = WaitPromoted(ctx, i, req.LastLog)
	}
	if err != nil {
		err = RecoveryError(err, p, req.LastFatal())
		_ = req.Stop(context.WithoutCancel(ctx))
		if uerr := r.PutBack(); uerr != nil {
			return RestoreResult{}, fmt.Errorf("restore of %s failed: %w; %v", i.ID, err, uerr)
		}
		return RestoreResult{}, restartOld(fmt.Errorf("restore of %s failed: %w; the previous data directory is back in place", i.ID, err))
	}
	r.RemovePrevious(ctx)
	return RestoreResult{Backup: p.Backup, Recovery: p.Recovery}, nil
}

// RecoveryError explains a failed recovery: PostgreSQL's "recovery ended
// before configured recovery target was reached" (fatal, the server log's
// last FATAL message) means the target is after the archived WAL.
func RecoveryError(err error, p RestorePlan, fatal string) error {
	if strings.Contains(fatal, "recovery ended before configured recovery target was reached") {
		return fmt.Errorf("target %s is after the last archived WAL (PostgreSQL: %s)", p.Recovery, fatal)
	}
	return err
}

// Restored is a backup restored in place of an instance's data and WAL
// directories, the previous ones kept beside them until RemovePrevious.
type Restored struct {
	id string
	d  dirs
}

// RestoreData restores the planned backup into new directories beside
// the instance's data and WAL directories and, once pgBackRest is done,
// moves them in place, the current ones aside. The server must be
// stopped. On failure nothing has moved and the new directories are gone.
func (e *Env) RestoreData(ctx context.Context, i Instance, p RestorePlan) (*Restored, error) {
	d := dirs{data: i.DataDir, fs: e.fsAs(context.WithoutCancel(ctx))}
	if i.WALDir != filepath.Join(i.DataDir, "pg_wal") {
		d.wal = i.WALDir
	}
	logging.From(ctx).Info(fmt.Sprintf("restoring backup %s of %s into %s", p.Backup.Label, i.ID, d.fresh(d.data)))
	if err := e.restoreInto(ctx, i, d, p.args); err != nil {
		d.removeFresh()
		return nil, fmt.Errorf("restore of %s: %w; its data directory is unchanged", i.ID, err)
	}
	if err := d.swap(); err != nil {
		d.removeFresh()
		return nil, fmt.Errorf("restore of %s: %w; its data directory is unchanged", i.ID, err)
	}
	return &Restored{id: i.ID, d: d}, nil
}

// Previous is where the previous data directory is kept.
func (r *Restored) Previous() string { return r.d.previous(r.d.data) }

// PutBack removes the restored directories and puts the previous ones
// back. The server must be stopped.
func (r *Restored) PutBack() error {
	if err := r.d.unswap(); err != nil {
		return fmt.Errorf("putting the previous data directory of %s back failed too (%v): it is %s", r.id, err, r.Previous())
	}
	return nil
}

// RemovePrevious removes the previous directories, once the restored
// server has recovered.
func (r *Restored) RemovePrevious(ctx context.Context) {
	logging.From(ctx).Info("removing the previous data directory of " + r.id)
	r.d.removePrevious()
}

// restoreInto runs pgBackRest's restore into the fresh directories. The
// restore_command it writes names the final paths, not the fresh ones.
func (e *Env) restoreInto(ctx context.Context, i Instance, d dirs, args []string) error {
	for _, p := range d.freshDirs() {
		if err := d.fs("rm", "-rf", "--", p); err != nil {
			return err
		}
		if err := d.fs("mkdir", "-m", "0700", "--", p); err != nil {
			return err
		}
	}
	pre := []string{"--pg1-path=" + d.fresh(d.data)}
	if d.wal != "" {
		pre = append(pre, "--link-map=pg_wal="+d.fresh(d.wal))
	}
	pre = append(pre, "--recovery-option=restore_command="+e.command(i, restoreVerb(i)))
	if _, err := e.pgbackrest(ctx, i, "restore", append(pre, args...)...); err != nil {
		return err
	}
	if d.wal == "" {
		return nil
	}
	// pg_wal must point at the WAL directory's final path.
	return d.fs("ln", "-sfnT", d.wal, filepath.Join(d.fresh(d.data), "pg_wal"))
}

// restoreVerb is restore_command's pgBackRest arguments: a Patroni
// member's names its own data directory (the cluster's file lists all of
// this host's members, and pg1 is not always this one).
func restoreVerb(i Instance) string {
	if i.Cluster != "" {
		return "--pg1-path=" + i.DataDir + ` archive-get %f "%p"`
	}
	return `archive-get %f "%p"`
}

// WaitPromoted waits until the instance's server, started on its
// restored data, has left recovery (promoted at the target) and accepts
// writes, or fails when it stops (lastLog: the end of its log).
func WaitPromoted(ctx context.Context, i Instance, lastLog func() string) error {
	deadline := time.Now().Add(PromoteTimeout)
	for delay := 10 * time.Millisecond; ; delay = min(delay*2, 200*time.Millisecond) {
		if _, ok := postgres.Running(i.DataDir); !ok {
			return fmt.Errorf("PostgreSQL stopped while recovering: %s", lastLog())
		}
		if done, err := promoted(ctx, i); err == nil && done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PostgreSQL %s is still recovering after %s: %s", i.ID, PromoteTimeout, lastLog())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

func promoted(ctx context.Context, i Instance) (bool, error) {
	conn, err := postgres.Connect(ctx, i.Conn)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var rec bool
	err = conn.QueryRow(ctx, "select pg_is_in_recovery()").Scan(&rec)
	return err == nil && !rec, err
}

// CheckSpace refuses a restore of size bytes that would not fit beside
// the instance's current data directory (both exist until the restored
// one has recovered), nor leave recovery room for WAL where the WAL
// directory is.
func CheckSpace(i Instance, size int64) error {
	data, err := statfs(filepath.Dir(i.DataDir))
	if err != nil {
		return err
	}
	wal, err := statfs(filepath.Dir(i.WALDir))
	if err != nil {
		return err
	}
	need := map[string]int64{data.dir: size}
	need[wal.dir] += walReserve
	if data.fsid == wal.fsid {
		need = map[string]int64{data.dir: size + walReserve}
	}
	for _, fs := range []fsInfo{data, wal} {
		if n, ok := need[fs.dir]; ok && fs.free < n {
			return fmt.Errorf("restore of %s needs %s free in %s (the backup beside the current data directory) and %s is: free some space first", i.ID, HumanSize(n), fs.dir, HumanSize(fs.free))
		}
	}
	return nil
}

type fsInfo struct {
	dir  string
	fsid syscall.Fsid
	free int64
}

func statfs(dir string) (fsInfo, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fsInfo{}, fmt.Errorf("checking free space in %s: %w", dir, err)
	}
	return fsInfo{dir: dir, fsid: st.Fsid, free: int64(st.Bavail) * st.Bsize}, nil
}

// dirs are an instance's data and WAL directories and, beside each, the
// fresh one a restore fills and the previous one it moves aside; wal is
// "" when the WAL is in the data directory (a Patroni member's pg_wal).
// They are in directories the account PostgreSQL runs as can write, so
// fs runs every change there (rm, mkdir, mv, ln) as that account: root
// never follows a link it could have planted.
type dirs struct {
	data, wal string
	fs        func(args ...string) error
}

// fsAs returns a dirs.fs that runs coreutils as the instance's account.
func (e *Env) fsAs(ctx context.Context) func(args ...string) error {
	return func(args ...string) error {
		_, err := e.Runner.Run(ctx, run.Cmd{Args: args, Dir: "/"})
		return err
	}
}

func (dirs) fresh(p string) string    { return p + ".restore" }
func (dirs) previous(p string) string { return p + ".previous" }

// current are the directories a restore replaces.
func (d dirs) current() []string {
	if d.wal == "" {
		return []string{d.data}
	}
	return []string{d.data, d.wal}
}

func (d dirs) freshDirs() []string {
	var out []string
	for _, p := range d.current() {
		out = append(out, d.fresh(p))
	}
	return out
}

func (d dirs) previousDirs() []string {
	var out []string
	for _, p := range d.current() {
		out = append(out, d.previous(p))
	}
	return out
}

func (d dirs) removeFresh() {
	_ = d.fs(append([]string{"rm", "-rf", "--"}, d.freshDirs()...)...)
}

func (d dirs) removePrevious() {
	_ = d.fs(append([]string{"rm", "-rf", "--"}, d.previousDirs()...)...)
}

// swap moves the current directories aside and the fresh ones in place;
// when a move fails, those done are undone.
func (d dirs) swap() error {
	if err := d.fs(append([]string{"rm", "-rf", "--"}, d.previousDirs()...)...); err != nil {
		return err // a leftover of an interrupted restore that cannot go
	}
	var moves [][2]string
	for _, p := range d.current() {
		moves = append(moves, [2]string{p, d.previous(p)})
	}
	for _, p := range d.current() {
		moves = append(moves, [2]string{d.fresh(p), p})
	}
	for k, m := range moves {
		if err := d.fs("mv", "-T", "--", m[0], m[1]); err != nil {
			for j := k - 1; j >= 0; j-- {
				_ = d.fs("mv", "-T", "--", moves[j][1], moves[j][0])
			}
			return fmt.Errorf("moving the restored directories in place: %w", err)
		}
	}
	return nil
}

// unswap removes the restored directories and puts the previous ones back.
func (d dirs) unswap() error {
	for _, p := range d.current() {
		if err := d.fs("rm", "-rf", "--", p); err != nil {
			return err
		}
		if err := d.fs("mv", "-T", "--", d.previous(p), p); err != nil {
			return err
		}
	}
	return nil
}
