package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/postgres"
	"github.com/pgherd/pgherd/pkg/site"
)

// Files is what the instance's stanza needs on this host: its pgBackRest
// file (0600: pass-through options may hold an object store's keys) and
// the directories pgBackRest writes to, each to be created owned by the
// instance's account.
type Files struct {
	ConfigFile string
	Config     []byte
	Dirs       []string
}

// Files returns the instance's pgBackRest file and directories.
func (e *Env) Files(i Instance) (Files, error) {
	p, err := e.settings()
	if err != nil {
		return Files{}, err
	}
	dirs := []string{site.Path(e.Site.Prefix, p.Logpath, i.Version, i.fileName()), e.runDir()}
	if t := p.Repository.Options["repo1-type"]; t == "" || t == "posix" {
		dirs = append(dirs, site.Path(e.Site.Prefix, p.Repository.Path, i.Version, i.fileName()))
	}
	return Files{ConfigFile: e.ConfigFile(i), Config: []byte(e.config(i)), Dirs: dirs}, nil
}

// CheckCreate refuses to set up a new instance's backups, before anything
// is created, when the pgbackrest program is missing or when the
// instance's pgBackRest file is left by a dropped instance of the same
// name: its backups are in the repository under the same stanza, and
// pgherd neither deletes nor reuses them.
func (e *Env) CheckCreate(i Instance) error {
	if err := e.CheckProgram(); err != nil {
		return err
	}
	p := e.Site.PgBackRest
	if f := e.ConfigFile(i); fileExists(f) {
		cmd := fmt.Sprintf("%s --config=%s --stanza=%s", p.Execpath, f, i.Stanza())
		return fmt.Errorf("%s exists: a dropped %s left its backups in stanza %s; delete them ('%s stop', then '%s stanza-delete', as %s) and the file, or choose another name", f, i.what(), i.Stanza(), cmd, cmd, e.User.Name)
	}
	return nil
}

// CheckProgram refuses backups when the pgbackrest program is missing.
func (e *Env) CheckProgram() error {
	p, err := e.settings()
	if err != nil {
		return err
	}
	if _, err := os.Stat(p.Execpath); err != nil {
		return fmt.Errorf("site.yaml turns pgBackRest on but %s is missing: install it (apt install pgbackrest) or fix pgbackrest.execpath", p.Execpath)
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// CreateStanza creates the instance's stanza in the repository; the
// server must run. It refuses a stanza left there by another server
// (pgBackRest's own check of the system identifier), so that a new
// instance never archives over an old one's backups.
func (e *Env) CreateStanza(ctx context.Context, i Instance) error {
	msg := "creating pgBackRest stanza " + i.Stanza()
	if i.Cluster != "" {
		msg += " for Patroni cluster " + i.Cluster
	}
	logging.From(ctx).Info(msg)
	if _, err := e.pgbackrest(ctx, i, "stanza-create"); err != nil {
		return fmt.Errorf("creating the pgBackRest stanza of %s: %w", i.ID, err)
	}
	return nil
}

// Types of backup.
var Types = []string{"full", "diff", "incr"}

// BackupResult is what a backup made.
type BackupResult struct {
	Label string
	Type  string
	// Primary is the member a Patroni cluster's backup started on ("" for
	// a plain instance).
	Primary string
}

var labelRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`new backup label = (\S+)`) })

// Backup takes a backup of the running instance (typ: full, diff, incr;
// empty: pgBackRest's default, incr, or full when there is none). When the
// server reports failed archiving, it asks pgBackRest's check first and
// refuses with its message: a backup whose WAL is not archived cannot be
// restored. A Patroni member's backup is its cluster's, taken from the
// primary, which must be one of the members on this host; fromStandby
// has pgBackRest copy the files from a standby member instead
// (backup-standby), the primary still starting and stopping the backup.
func (e *Env) Backup(ctx context.Context, i Instance, typ string, fromStandby bool) (BackupResult, error) {
	if _, err := e.settings(); err != nil {
		return BackupResult{}, err
	}
	var primary string
	if i.Cluster != "" {
		p, err := localPrimary(ctx, i)
		if err != nil {
			return BackupResult{}, err
		}
		primary = p.Name
		i.ID, i.DataDir, i.Conn = "cluster "+i.Cluster+" (primary "+p.Name+")", p.DataDir, p.Conn
	} else if fromStandby {
		return BackupResult{}, fmt.Errorf("--backup-standby applies to a Patroni member: %s is a plain instance", i.ID)
	}
	if _, ok := postgres.Running(i.DataDir); !ok {
		return BackupResult{}, fmt.Errorf("instance %s is not running: start it first (pgBackRest backs up a running server)", i.ID)
	}
	if err := e.checkArchiving(ctx, i); err != nil {
		return BackupResult{}, err
	}
	args := []string{"--log-level-console=info"}
	if typ != "" {
		args = append(args, "--type="+typ)
	}
	if fromStandby {
		args = append(args, "--backup-standby")
	}
	logging.From(ctx).Info(fmt.Sprintf("backing up %s to stanza %s", i.ID, i.Stanza()))
	out, err := e.pgbackrest(ctx, i, "backup", args...)
	if err != nil {
		return BackupResult{}, fmt.Errorf("backup of %s: %w", i.ID, err)
	}
	m := labelRE().FindStringSubmatch(out)
	if m == nil {
		return BackupResult{}, fmt.Errorf("backup of %s: pgBackRest did not say the new backup's label", i.ID)
	}
	return BackupResult{Label: m[1], Type: typeOfLabel(m[1]), Primary: primary}, nil
}

// localPrimary returns the member of the cluster on this host that is
// primary (not in recovery): pgBackRest starts and stops a backup there.
func localPrimary(ctx context.Context, i Instance) (Member, error) {
	for _, m := range i.Members {
		if _, ok := postgres.Running(m.DataDir); !ok {
			continue
		}
		conn, err := postgres.Connect(ctx, m.Conn)
		if err != nil {
			continue
		}
		var standby bool
		err = conn.QueryRow(ctx, "select pg_is_in_recovery()").Scan(&standby)
		conn.Close(context.WithoutCancel(ctx))
		if err == nil && !standby {
			return m, nil
		}
	}
	return Member{}, fmt.Errorf("the primary of Patroni cluster %s is not one of its running members on this host: back up on the primary's host ('pgherd patroni list --cluster %s' shows it)", i.Cluster, i.Cluster)
}

// typeOfLabel reads the type from a label's last letter (F, D, I).
func typeOfLabel(l string) string {
	switch l[len(l)-1] {
	case 'F':
		return "full"
	case 'D':
		return "diff"
	}
	return "incr"
}

// checkArchiving asks the server whether archive_command last failed;
// only then does it run pgBackRest's check (which switches WAL and waits
// for it), so that a healthy backup pays one query, not a WAL switch.
func (e *Env) checkArchiving(ctx context.Context, i Instance) error {
	conn, err := postgres.Connect(ctx, i.Conn)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", i.ID, err)
	}
	var failing bool
	err = conn.QueryRow(ctx, `select coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false) from pg_stat_archiver`).Scan(&failing)
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("reading pg_stat_archiver of %s: %w", i.ID, err)
	}
	if !failing {
		return nil
	}
	if err := e.Check(ctx, i); err != nil {
		return fmt.Errorf("WAL archiving of %s is broken, so a backup could not be restored: %w; fix it, then back up again", i.ID, err)
	}
	return nil
}

// Check runs pgBackRest's check: the stanza's configuration and the
// archiving of a freshly switched WAL segment.
func (e *Env) Check(ctx context.Context, i Instance) error {
	_, err := e.pgbackrest(ctx, i, "check", "--archive-timeout=10")
	return err
}

// Backup is one backup in the repository.
type Backup struct {
	Label string    `json:"label"`
	Type  string    `json:"type"`
	Start time.Time `json:"start"`
	Stop  time.Time `json:"stop"`
	// Size is the size of the database it restores; RepoSize what it
	// takes in the repository, compressed, with the backups it depends on;
	// RepoDelta what this backup alone added to it.
	Size      int64 `json:"size_bytes"`
	RepoSize  int64 `json:"repository_size_bytes"`
	RepoDelta int64 `json:"repository_delta_bytes"`
	// WALStart and WALStop are the WAL segments needed to make it consistent.
	WALStart string `json:"wal_start"`
	WALStop  string `json:"wal_stop"`
	// Prior is the backup a diff or incr backup depends on; nil for a full one.
	Prior *string `json:"prior"`
}

type infoStatus struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type infoJSON struct {
	Name   string     `json:"name"`
	Status infoStatus `json:"status"`
	Repo   []struct {
		Status infoStatus `json:"status"`
	} `json:"repo"`
	Backup []struct {
		Label     string  `json:"label"`
		Type      string  `json:"type"`
		Prior     *string `json:"prior"`
		Timestamp struct {
			Start int64 `json:"start"`
			Stop  int64 `json:"stop"`
		} `json:"timestamp"`
		Info struct {
			Size       int64 `json:"size"`
			Repository struct {
				Size  int64 `json:"size"`
				Delta int64 `json:"delta"`
			} `json:"repository"`
		} `json:"info"`
		Archive struct {
			Start string `json:"start"`
			Stop  string `json:"stop"`
		} `json:"archive"`
	} `json:"backup"`
}

// Backups lists the stanza's backups, oldest first, from `pgbackrest info`.
func (e *Env) Backups(ctx context.Context, i Instance) ([]Backup, error) {
	if _, err := e.settings(); err != nil {
		return nil, err
	}
	out, err := e.pgbackrest(ctx, i, "info", "--output=json")
	if err != nil {
		return nil, fmt.Errorf("listing the backups of %s: %w", i.ID, err)
	}
	return parseInfo(out, i.Stanza())
}

func parseInfo(out, stanza string) ([]Backup, error) {
	var stanzas []infoJSON
	if err := json.Unmarshal([]byte(out), &stanzas); err != nil {
		return nil, fmt.Errorf("reading pgbackrest info: %w", err)
	}
	for _, s := range stanzas {
		if s.Name != stanza {
			continue
		}
		// 2: no backups yet, which is a list, not an error.
		if s.Status.Code != 0 && s.Status.Code != 2 {
			msg := s.Status.Message
			for _, r := range s.Repo {
				if r.Status.Code != 0 {
					msg = errorLine("ERROR: " + strings.ReplaceAll(r.Status.Message, "\n", "\n "))
				}
			}
			return nil, fmt.Errorf("the repository of stanza %s cannot be read: %s", stanza, msg)
		}
		out := make([]Backup, 0, len(s.Backup))
		for _, b := range s.Backup {
			x := Backup{
				Label: b.Label, Type: b.Type,
				Start: time.Unix(b.Timestamp.Start, 0).UTC(), Stop: time.Unix(b.Timestamp.Stop, 0).UTC(),
				Size: b.Info.Size, RepoSize: b.Info.Repository.Size, RepoDelta: b.Info.Repository.Delta,
				WALStart: b.Archive.Start, WALStop: b.Archive.Stop,
			}
			x.Prior = b.Prior
			out = append(out, x)
		}
		return out, nil
	}
	return nil, fmt.Errorf("stanza %s is not in the repository: was the instance created with pgbackrest: on?", stanza)
}

// ErrNoBackup is returned when a stanza has no backup to restore.
var ErrNoBackup = errors.New("no backup")

// HumanSize renders bytes the way pgBackRest does (21.9MB).
func HumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + "B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%cB", float64(n)/float64(div), "KMGTP"[exp])
}
