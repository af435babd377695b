package instance

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgherd/pgherd/pkg/backup"
	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/patroni"
	"github.com/pgherd/pgherd/pkg/postgres"
	"github.com/pgherd/pgherd/pkg/run"
	"github.com/pgherd/pgherd/pkg/safefs"
)

// A Patroni cluster is restored as a whole (pkg/backup DESIGN.md, "A
// cluster restore"): every member stopped, one member's data restored and
// recovered outside Patroni, the cluster's keys removed from the DCS (its
// configuration kept) so that Patroni registers the cluster anew with that
// data, a full backup of the new timeline, the other members re-created
// from it.

// ClusterRestoreResult says what a cluster restore did.
type ClusterRestoreResult struct {
	Cluster  string
	Backup   backup.Backup // the backup restored
	Recovery string        // what the leader recovered to, in words
	Leader   string        // the restored member, the cluster's leader now
	Timeline int           // the leader's timeline
	Stopped  []string      // the members that were running, in the order they were stopped
	// NewBackup is the full backup of the new timeline, from which the
	// Rebuilt members were re-created.
	NewBackup string
	Rebuilt   []string
}

// ClusterMembersHere returns the members of i's Patroni cluster on this
// host, sorted by name, and the cluster's name.
func ClusterMembersHere(env *Env, i *Instance) (string, []*Instance, error) {
	cfg, err := i.patroniConfig()
	if err != nil {
		return "", nil, err
	}
	all, err := List(env)
	if err != nil {
		return "", nil, err
	}
	var out []*Instance
	for _, o := range all {
		if c, err := o.patroniConfig(); err == nil && c.Scope == cfg.Scope {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b *Instance) int { return strings.Compare(a.Name, b.Name) })
	return cfg.Scope, out, nil
}

// checkNotPaused refuses a cluster in maintenance mode, as its running
// members say: the pause is in the configuration the restore keeps, and
// a paused Patroni registers no cluster, so none would lead.
func checkNotPaused(ctx context.Context, members []*Instance, scope string) error {
	for _, m := range members {
		_, c, err := m.PatroniClient()
		if err != nil {
			continue
		}
		if cl, err := c.Cluster(ctx); err == nil {
			if cl.Pause {
				return fmt.Errorf("Patroni cluster %s is paused (maintenance mode), and a paused Patroni would not make the restored member its leader: resume it first ('pgherd patroni resume %s'); nothing was changed", scope, m.Name)
			}
			return nil
		}
	}
	return nil
}

// memberName is the instance's Patroni node name.
func memberName(i *Instance) string {
	if c, err := i.patroniConfig(); err == nil {
		return c.Name
	}
	return i.Name
}

// RestoreCluster restores member i's Patroni cluster to the target, with
// i as its leader. It refuses, before stopping anything, a target the
// repository cannot reach, a DCS that does not answer and a member
// running on another host (which pgherd cannot stop). Until Patroni
// starts on the restored data, a failure puts back the previous data
// directory and starts again the members that ran; after, the error says
// what state the cluster is in and what to run.
func RestoreCluster(ctx context.Context, env *Env, i *Instance, t backup.Target) (ClusterRestoreResult, error) {
	log := logging.From(ctx)
	bi, err := BackupTarget(env, i)
	if err != nil {
		return ClusterRestoreResult{}, err
	}
	cfg, err := i.patroniConfig()
	if err != nil {
		return ClusterRestoreResult{}, err
	}
	scope, members, err := ClusterMembersHere(env, i)
	if err != nil {
		return ClusterRestoreResult{}, err
	}
	res := ClusterRestoreResult{Cluster: scope, Leader: i.Name}
	st, err := patroni.ReadDCSState(ctx, cfg)
	if err != nil {
		return res, fmt.Errorf("restoring Patroni cluster %s needs its DCS: %w; nothing was changed", scope, err)
	}
	local := map[string]*Instance{}
	for _, m := range members {
		local[memberName(m)] = m
	}
	for _, name := range st.Active("") {
		if local[name] == nil {
			return res, fmt.Errorf("member %s of Patroni cluster %s runs on another host: stop it there ('pgherd instance stop' on its host), then restore again; nothing was changed", name, scope)
		}
	}
	if err := checkNotPaused(ctx, members, scope); err != nil {
		return res, err
	}
	// The leader key is held by a member on this host (others were
	// refused): pgBackRest's check can archive the current WAL there.
	p, err := BackupEnv(env).PlanRestore(ctx, bi, t, st.Leader != "", time.Time{})
	if err != nil {
		return res, err
	}
	res.Backup, res.Recovery = p.Backup, p.Recovery
	// Each other member is re-created beside its previous data, from a
	// backup about the size of the one restored.
	for _, m := range members {
		if m.ID() != i.ID() {
			if err := backup.CheckSpace(backupInstance(env, m), p.Backup.Size); err != nil {
				return res, fmt.Errorf("%w; nothing was changed", err)
			}
		}
	}

	running, err := stopMembers(ctx, env, members, local[st.Leader])
	res.Stopped = Names(running)
	slices.Reverse(res.Stopped) // in the order they stopped
	restart := func(err error) error {
		if serr := startMembers(context.WithoutCancel(ctx), env, running); serr != nil {
			return fmt.Errorf("%w; starting its members again failed too: %v", err, serr)
		}
		if len(running) > 0 {
			return fmt.Errorf("%w; its members (%s) are started again", err, strings.Join(res.Stopped, ", "))
		}
		return err
	}
	if err != nil {
		return res, restart(fmt.Errorf("restore of Patroni cluster %s: %w; nothing was restored", scope, err))
	}

	be := BackupEnv(env)
	r, err := be.RestoreData(ctx, bi, p)
	if err != nil {
		return res, restart(err)
	}
	rs := recoveryServer{env: env, i: i}
	log.Info(fmt.Sprintf("recovering %s to %s outside Patroni (on its socket only)", i.ID(), p.Recovery))
	err = rs.start(ctx)
	if err == nil {
		err = backup.WaitPromoted(ctx, bi, rs.lastLog)
	}
	if err == nil {
		err = rs.stop(ctx)
	} else {
		err = backup.RecoveryError(err, p, rs.lastFatal())
		_ = rs.stop(context.WithoutCancel(ctx))
	}
	var n int64
	if err == nil {
		log.Info("removing Patroni cluster " + scope + " from the DCS (its configuration stays)")
		n, err = patroni.ResetDCS(ctx, cfg)
	}
	if err != nil {
		if uerr := r.PutBack(); uerr != nil {
			return res, fmt.Errorf("restore of Patroni cluster %s failed: %w; %v", scope, err, uerr)
		}
		return res, restart(fmt.Errorf("restore of Patroni cluster %s failed: %w; the previous data directory of %s is back in place", scope, err, i.ID()))
	}
	log.Info(fmt.Sprintf("removed %d keys of Patroni cluster %s", n, scope))

	others := slices.DeleteFunc(slices.Clone(members), func(m *Instance) bool { return m.ID() == i.ID() })
	then := rebuildHint(others, i)
	err = startPatroni(ctx, env, i, cfg, true)
	if err == nil {
		err = backup.WaitPromoted(ctx, bi, func() string { return lastLogLines(i) })
	}
	if err != nil {
		return res, fmt.Errorf("the data of %s is restored (recovered to %s) and Patroni cluster %s's keys are removed from the DCS, but Patroni did not make %s a leader that accepts writes: %w; its previous data directory is %s and the other members are stopped; see 'pgherd patroni logs %s', and once %s leads: %s",
			i.ID(), p.Recovery, scope, i.Name, err, r.Previous(), i.Name, i.Name, then)
	}
	r.RemovePrevious(ctx)
	if _, c, err := i.PatroniClient(); err == nil {
		if s, err := c.Patroni(ctx); err == nil {
			res.Timeline = s.Timeline
		}
	}
	if len(others) == 0 {
		return res, nil
	}
	// The other members' data is on the old timeline: they are
	// re-created from a backup of the new one (the latest backup, which
	// their create_replica_methods restore).
	bi, err = BackupTarget(env, i)
	if err == nil {
		var b backup.BackupResult
		if b, err = be.Backup(ctx, bi, "full", false); err == nil {
			res.NewBackup = b.Label
		}
	}
	if err != nil {
		return res, fmt.Errorf("Patroni cluster %s is restored and %s leads it, but the full backup of its new timeline failed: %w; the other members are stopped: %s", scope, i.Name, err, then)
	}
	for _, m := range others {
		if err := rebuildMember(ctx, env, m); err != nil {
			return res, fmt.Errorf("Patroni cluster %s is restored and %s leads it (backup %s), but %w", scope, i.Name, res.NewBackup, err)
		}
		res.Rebuilt = append(res.Rebuilt, m.Name)
	}
	return res, nil
}

// Names returns the instances' names, in order.
func Names(is []*Instance) []string {
	var out []string
	for _, i := range is {
		out = append(out, i.Name)
	}
	return out
}

// rebuildHint says how to finish by hand: a full backup, then each other
// member started and re-initialised.
func rebuildHint(others []*Instance, leader *Instance) string {
	hint := fmt.Sprintf("'pgherd instance backup %s --type full'", leader.Name)
	for _, m := range others {
		hint += fmt.Sprintf(", 'pgherd instance start %s', 'pgherd patroni reinit %s --yes'", m.Name, m.Name)
	}
	return hint
}

// stopMembers stops the members whose Patroni runs, the leader last (a
// replica stopped after it would only take its place), and returns
// them in the order they are to start again: the leader first.
func stopMembers(ctx context.Context, env *Env, members []*Instance, leader *Instance) ([]*Instance, error) {
	var running []*Instance
	for _, m := range members {
		if _, st, err := ServiceState(ctx, env, m); err == nil && st.Running && m != leader {
			running = append(running, m)
		}
	}
	if leader != nil {
		running = append(running, leader)
	}
	for k, m := range running {
		if err := Stop(ctx, env, m); err != nil {
			stopped := slices.Clone(running[:k+1])
			slices.Reverse(stopped)
			return stopped, err
		}
	}
	slices.Reverse(running)
	return running, nil
}

// startMembers starts members in order.
func startMembers(ctx context.Context, env *Env, members []*Instance) error {
	var errs []error
	for _, m := range members {
		errs = append(errs, Start(ctx, env, m))
	}
	return errors.Join(errs...)
}

// rebuildMember re-creates a stopped member from the cluster's latest
// backup: its data directory moved aside and an empty one made, Patroni
// creates it as a new replica (create_replica_methods: pgBackRest, else
// pg_basebackup from the leader). The previous directory is removed once
// the member runs.
func rebuildMember(ctx context.Context, env *Env, m *Instance) error {
	cfg, err := m.patroniConfig()
	if err != nil {
		return err
	}
	as := func(args ...string) error {
		_, err := env.Runner.Run(context.WithoutCancel(ctx), run.Cmd{Args: args, Dir: "/"})
		return err
	}
	dirs := []string{m.DataDir}
	if m.WALDir != filepath.Join(m.DataDir, "pg_wal") {
		dirs = append(dirs, m.WALDir)
	}
	logging.From(ctx).Info(fmt.Sprintf("re-creating member %s from the new backup", m.ID()))
	for _, d := range dirs {
		if err = as("rm", "-rf", "--", d+".previous"); err == nil {
			err = as("mv", "-T", "--", d, d+".previous")
		}
		if err != nil {
			return fmt.Errorf("%s was not re-created: moving %s aside: %w; run 'pgherd instance start %s', then 'pgherd patroni reinit %s --yes'", m.ID(), d, err, m.Name, m.Name)
		}
	}
	if err := as("mkdir", "-m", "0700", "--", m.DataDir); err != nil {
		return fmt.Errorf("%s was not re-created: %w; its previous data directory is %s.previous", m.ID(), err, m.DataDir)
	}
	if err := startPatroni(ctx, env, m, cfg, false); err != nil {
		return fmt.Errorf("%s was not re-created: %w; its previous data directory is %s.previous; once the cause is fixed, run 'pgherd patroni reinit %s --yes'", m.ID(), err, m.DataDir, m.Name)
	}
	for _, d := range dirs {
		_ = as("rm", "-rf", "--", d+".previous")
	}
	return nil
}

// recoveryServer runs a restored member's PostgreSQL outside Patroni, on
// its socket only (no TCP: no client nor member reaches it), until it has
// recovered and promoted. The restored configuration is the backed-up
// member's (Patroni's postgresql.conf names its port, socket, pg_hba and
// log directory), so each of those is set on the command line; it logs to
// a file of its own.
type recoveryServer struct {
	env *Env
	i   *Instance
}

func (s recoveryServer) logFile() string {
	return filepath.Join(s.i.LogDir, s.i.serviceName()+"-restore.log")
}

func (s recoveryServer) pgctl(ctx context.Context, args ...string) error {
	argv := append([]string{filepath.Join(s.i.BinDir, "pg_ctl"), "-D", s.i.DataDir}, args...)
	_, err := s.env.Runner.Run(ctx, run.Cmd{Args: argv, Dir: "/"})
	return err
}

func (s recoveryServer) start(ctx context.Context) error {
	q := func(v string) string { return "'" + strings.ReplaceAll(v, "'", `'"'"'`) + "'" }
	opts := []string{
		"-c listen_addresses=''",
		"-c port=" + strconv.Itoa(s.i.Port),
		"-c unix_socket_directories=" + q(s.i.SocketDir),
		"-c hba_file=" + q(filepath.Join(s.i.DataDir, "pg_hba.conf")),
		"-c ident_file=" + q(filepath.Join(s.i.DataDir, "pg_ident.conf")),
		"-c logging_collector=off",
	}
	if _, err := s.env.Runner.Run(ctx, run.Cmd{Args: []string{"rm", "-f", "--", s.logFile()}, Dir: "/"}); err != nil {
		return err
	}
	timeout := strconv.Itoa(int(backup.PromoteTimeout.Seconds()))
	if err := s.pgctl(ctx, "-w", "-t", timeout, "-l", s.logFile(), "-o", strings.Join(opts, " "), "start"); err != nil {
		return fmt.Errorf("PostgreSQL %s did not recover: %s", s.i.ID(), s.lastLog())
	}
	return nil
}

func (s recoveryServer) stop(ctx context.Context) error {
	if _, ok := postgres.Running(s.i.DataDir); !ok {
		return nil
	}
	return s.pgctl(ctx, "-w", "-m", "fast", "stop")
}

// lastLog is the end of the recovery server's log.
func (s recoveryServer) lastLog() string {
	b, err := safefs.ReadFile(s.logFile())
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return "no log written (" + s.logFile() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return fmt.Sprintf("%s (from %s)", strings.Join(lines, " | "), s.logFile())
}

// lastFatal is the recovery server's last FATAL message.
func (s recoveryServer) lastFatal() string {
	b, err := safefs.ReadFile(s.logFile())
	if err != nil {
		return ""
	}
	return lastFatalIn(string(b))
}
