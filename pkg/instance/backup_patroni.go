package instance

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pgherd/pgherd/pkg/backup"
	"github.com/pgherd/pgherd/pkg/patroni"
	"github.com/pgherd/pgherd/pkg/safefs"
)

// A Patroni cluster has one stanza, named after its scope, and on each
// host one pgBackRest file that lists the cluster's members there as
// pg1..pgN (pkg/backup DESIGN.md, "Patroni clusters").

// clusterBackupInstance describes member i's cluster for pkg/backup: its
// scope and its members on this host, sorted by name, i among them.
func clusterBackupInstance(env *Env, i *Instance, scope string) (backup.Instance, error) {
	all, err := List(env)
	if err != nil {
		return backup.Instance{}, err
	}
	var members []backup.Member
	for _, o := range all {
		if o.ID() == i.ID() {
			continue
		}
		if c, err := o.patroniConfig(); err == nil && c.Scope == scope {
			members = append(members, backup.Member{Name: o.Name, DataDir: o.DataDir, Conn: o.Conn(env)})
		}
	}
	members = append(members, backup.Member{Name: i.Name, DataDir: i.DataDir, Conn: i.Conn(env)})
	slices.SortFunc(members, func(a, b backup.Member) int { return strings.Compare(a.Name, b.Name) })
	bi := backupInstance(env, i)
	bi.Cluster, bi.Members = scope, members
	return bi, nil
}

// memberBackupTarget is BackupTarget for a Patroni member.
func memberBackupTarget(env *Env, i *Instance) (backup.Instance, error) {
	cfg, err := i.patroniConfig()
	if err != nil {
		return backup.Instance{}, err
	}
	return clusterBackupInstance(env, i, cfg.Scope)
}

// checkMemberBackups refuses, before anything is made, a new member whose
// backups could not be set up: the pgbackrest program is missing, or the
// member bootstraps a cluster whose pgBackRest file a dropped cluster of
// the same name left (its backups are in the stanza).
func checkMemberBackups(env *Env, bi backup.Instance, bootstrap bool) error {
	be := BackupEnv(env)
	if bootstrap {
		return be.CheckCreate(bi)
	}
	return be.CheckProgram()
}

// configureMemberBackups adds to a new member's Patroni configuration what
// its cluster's backups need: archiving into the cluster's stanza in the
// cluster-wide configuration (bootstrap.dcs, which Patroni uses when this
// member initialises the cluster), replicas created from the latest backup
// before Patroni's pg_basebackup, and restore_command through
// recovery_conf (Patroni removes it from postgresql.auto.conf).
func configureMemberBackups(env *Env, bi backup.Instance, i *Instance, cfg *patroni.Config) {
	be := BackupEnv(env)
	params := cfg.Bootstrap.DCS.PostgreSQL.Parameters
	if params == nil {
		params = map[string]string{}
		cfg.Bootstrap.DCS.PostgreSQL.Parameters = params
	}
	params["archive_mode"] = "on"
	params["archive_command"] = be.ClusterArchiveCommand(bi)
	create, restore := be.ReplicaCommands(bi, i.DataDir)
	cfg.PostgreSQL.CreateReplicaMethods = []string{"pgbackrest", "basebackup"}
	cfg.PostgreSQL.PgBackRest = &patroni.ReplicaMethod{Command: create, NoParams: true, KeepData: true}
	cfg.PostgreSQL.RecoveryConf = map[string]string{"restore_command": restore}
}

// writeMemberBackupFile writes the cluster's pgBackRest file with the new
// member in it; the undo puts back the previous file, or removes it. The
// member's data directory is made empty beforehand: pgBackRest restores
// into an existing directory only.
func writeMemberBackupFile(env *Env, bi backup.Instance, i *Instance, u *undo) error {
	files, err := BackupEnv(env).Files(bi)
	if err != nil {
		return err
	}
	for _, d := range append(files.Dirs, filepath.Dir(files.ConfigFile), i.DataDir) {
		if err := mkdirs(d, 0o700, env.User, u); err != nil {
			return err
		}
	}
	old, err := safefs.ReadFile(files.ConfigFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		u.add(func() { os.Remove(files.ConfigFile) })
	case err != nil:
		return err
	default:
		u.add(func() { _ = safefs.WriteOwned(files.ConfigFile, old, env.User.FileOwner()) })
	}
	if bytes.Equal(old, files.Config) {
		return nil
	}
	return safefs.WriteOwned(files.ConfigFile, files.Config, env.User.FileOwner())
}

// checkMemberArchiving refuses a change to the archiving settings of a
// member whose cluster pgherd backs up: a member's own value would
// override the cluster-wide one that archives into the cluster's stanza.
func checkMemberArchiving(env *Env, i *Instance, scope, name string) error {
	be := BackupEnv(env)
	if !be.Enabled() {
		return nil
	}
	bi, err := clusterBackupInstance(env, i, scope)
	if err != nil {
		return err
	}
	return be.CheckOwned(bi, name)
}
