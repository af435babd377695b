package instance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pgherd/pgherd/pkg/backup"
	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/safefs"
)

// BackupEnv is the environment of pkg/backup for the instance's host.
func BackupEnv(env *Env) *backup.Env {
	return &backup.Env{Site: env.Site, User: env.User, Runner: env.Runner}
}

// BackupTarget describes the instance for pkg/backup, after rewriting its
// pgBackRest file when the file no longer says what the site and the
// instance do (a port changed since, or the repository's options). A
// Patroni member's is its cluster's, with the cluster's members on this
// host (a member created or dropped since).
func BackupTarget(env *Env, i *Instance) (backup.Instance, error) {
	be := BackupEnv(env)
	if !be.Enabled() {
		return backup.Instance{}, backup.ErrDisabled
	}
	bi := backupInstance(env, i)
	what := "instance " + i.ID()
	if i.PatroniManaged() {
		var err error
		if bi, err = memberBackupTarget(env, i); err != nil {
			return backup.Instance{}, err
		}
		what = fmt.Sprintf("Patroni cluster %s (of instance %s)", bi.Cluster, i.ID())
	}
	files, err := be.Files(bi)
	if err != nil {
		return backup.Instance{}, err
	}
	old, err := safefs.ReadFile(files.ConfigFile)
	if errors.Is(err, fs.ErrNotExist) {
		return backup.Instance{}, fmt.Errorf("%s has no pgBackRest stanza (%s is missing): it was created before backups were turned on; see docs/backup.md", what, files.ConfigFile)
	}
	if err != nil {
		return backup.Instance{}, err
	}
	if !bytes.Equal(old, files.Config) {
		if err := safefs.WriteOwned(files.ConfigFile, files.Config, env.User.FileOwner()); err != nil {
			return backup.Instance{}, err
		}
	}
	return bi, nil
}

func backupInstance(env *Env, i *Instance) backup.Instance {
	return backup.Instance{ID: i.ID(), Version: i.Version, Name: i.Name, DataDir: i.DataDir, WALDir: i.WALDir, Conn: i.Conn(env)}
}

// setupBackups writes the instance's pgBackRest file and creates its
// stanza, on a server started for it when the request leaves the instance
// stopped. The file's removal is registered; the stanza is the last thing
// Create makes, so nothing after it can fail.
func setupBackups(ctx context.Context, env *Env, i *Instance, u *undo) error {
	be := BackupEnv(env)
	bi := backupInstance(env, i)
	files, err := be.Files(bi)
	if err != nil {
		return err
	}
	for _, d := range append(files.Dirs, filepath.Dir(files.ConfigFile)) {
		if err := mkdirs(d, 0o700, env.User, u); err != nil {
			return err
		}
	}
	if err := safefs.WriteOwned(files.ConfigFile, files.Config, env.User.FileOwner()); err != nil {
		return err
	}
	u.add(func() { os.Remove(files.ConfigFile) })
	if i.State() != Started {
		if err := Start(ctx, env, i); err != nil {
			return err
		}
		defer func() {
			if err := Stop(context.WithoutCancel(ctx), env, i); err != nil {
				logging.From(ctx).Warn(err.Error())
			}
		}()
	}
	return be.CreateStanza(ctx, bi)
}

// Restore restores a plain instance from its stanza (pkg/backup.Restore),
// stopping and starting it through its service. A Patroni member is
// restored with its whole cluster: RestoreCluster.
func Restore(ctx context.Context, env *Env, i *Instance, t backup.Target) (backup.RestoreResult, error) {
	bi, err := BackupTarget(env, i)
	if err != nil {
		return backup.RestoreResult{}, err
	}
	if bi.Cluster != "" {
		return backup.RestoreResult{}, fmt.Errorf("instance %s is a member of Patroni cluster %s, which is restored as a whole (RestoreCluster); nothing was changed", i.ID(), bi.Cluster)
	}
	return BackupEnv(env).Restore(ctx, bi, backup.RestoreRequest{
		Target:    t,
		Stop:      func(ctx context.Context) error { return Stop(ctx, env, i) },
		Start:     func(ctx context.Context) error { return Start(ctx, env, i) },
		LastLog:   func() string { return lastLogLines(i) },
		LastFatal: func() string { return lastFatal(i) },
	})
}

// backsUp reports whether a new instance gets a stanza: when the site
// turns pgBackRest on, for a primary (a standby's WAL is its primary's).
func backsUp(env *Env, req CreateRequest) bool {
	return env.Site.PgBackRest != nil && req.StandbyFor == "" && req.Patroni == nil
}

// archiveSettings are the settings that archive a new instance's WAL with
// pgBackRest, when it gets a stanza.
func archiveSettings(env *Env, i *Instance, req CreateRequest) [][2]string {
	if !backsUp(env, req) {
		return nil
	}
	return BackupEnv(env).ArchiveSettings(backupInstance(env, i))
}

// lastFatal returns the last FATAL message of the server's current log.
func lastFatal(i *Instance) string {
	b, err := safefs.ReadFile(currentLogFile(i))
	if err != nil {
		return ""
	}
	return lastFatalIn(string(b))
}

// lastFatalIn returns the last FATAL message of a server log that is not
// a refused connection: while the server recovers, pgherd's own probes are
// refused with FATAL "the database system is in recovery mode" (or
// starting up, shutting down), which PostgreSQL may log after the startup
// process's FATAL that says why recovery stopped.
func lastFatalIn(log string) string {
	lines := strings.Split(log, "\n")
	for k := len(lines) - 1; k >= 0; k-- {
		if _, msg, ok := strings.Cut(lines[k], "FATAL:"); ok {
			if msg = strings.TrimSpace(msg); !strings.HasPrefix(msg, "the database system is ") {
				return msg
			}
		}
	}
	return ""
}
