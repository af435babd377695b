package dcs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/pgherd/pgherd/pkg/safefs"
)

// A data directory holds member.json (whose member it is), wal/ (the Raft
// log and stable store), snapshots/ and LOCK (held while a member runs). A
// directory that is not empty and has no member.json is foreign: we refuse
// it rather than mix our files into someone else's, and we never delete
// anything in it. The format lives here, beside Local, because setting up a
// member checks its data directory before anything is installed; the
// server (pkg/dcs/server) opens, locks and fills it.
const (
	identityFile = "member.json"
	lockFile     = "LOCK"
)

// WALDir is the data directory's subdirectory for the Raft log.
const WALDir = "wal"

type identity struct {
	Format int    `json:"format"`
	Name   string `json:"name"`
	// ClusterID is recorded once the member knows its cluster's ID, so
	// that the directory is never used in another cluster.
	ClusterID string `json:"cluster_id,omitempty"`
}

// LostLogHint says what to do about member name, which lost its Raft log.
func LostLogHint(name string) string {
	return "remove it from the cluster with `pgherd dcs leave " + name + "` on another member, then set it up again with `pgherd dcs join` (docs/dcs.md, \"A lost disk\")"
}

// FormatClusterID is a cluster ID as members and configurations write it:
// 16 hex digits.
func FormatClusterID(id uint64) string { return fmt.Sprintf("%016x", id) }

// EmptyDir reports whether dir is absent or has no entries.
func EmptyDir(dir string) bool {
	entries, err := os.ReadDir(dir)
	return errors.Is(err, os.ErrNotExist) || err == nil && len(entries) == 0
}

// RecordedCluster is the cluster ID dir's member.json records, "" if none.
func RecordedCluster(dir string) string {
	raw, err := os.ReadFile(filepath.Join(dir, identityFile))
	if err != nil {
		return ""
	}
	var id identity
	json.Unmarshal(raw, &id)
	return id.ClusterID
}

// OpenDataDir checks dir for name and reports whether it is new (absent or
// empty). It creates dir when absent.
func OpenDataDir(dir, name string) (fresh bool, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := MkdirPrivate(dir); err != nil {
			return false, fmt.Errorf("create data dir: %w", err)
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read data dir: %w", err)
	}
	if len(entries) == 0 {
		return true, os.Chmod(dir, 0o700)
	}
	raw, err := os.ReadFile(filepath.Join(dir, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("data dir %s is not empty and holds no pgherd dcs member (no %s): refusing to use it; set data_dir to an empty directory", dir, identityFile)
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", identityFile, err)
	}
	var id identity
	if err := json.Unmarshal(raw, &id); err != nil || id.Format != 1 || id.Name == "" {
		return false, fmt.Errorf("data dir %s: %s is corrupted; restore it from a backup or set data_dir to an empty directory", dir, identityFile)
	}
	if id.Name != name {
		return false, fmt.Errorf("data dir %s belongs to member %q, not %q: use that name or another data_dir", dir, id.Name, name)
	}
	if _, err := os.Stat(filepath.Join(dir, WALDir)); err != nil {
		return false, fmt.Errorf("data dir %s: member %s's raft log (%s/) is missing: restore it from a backup, or %s", dir, name, WALDir, LostLogHint(name))
	}
	return false, nil
}

// WriteIdentity records that dir now belongs to name, in cluster clusterID
// when known (atomically, 0600).
func WriteIdentity(dir, name, clusterID string) error {
	raw, _ := json.Marshal(identity{Format: 1, Name: name, ClusterID: clusterID})
	tmp := filepath.Join(dir, identityFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", identityFile, err)
	}
	if _, err := f.Write(raw); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", identityFile, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, identityFile)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ErrNotMemberData is wrapped by CheckDataDir's and RemoveDataDir's errors
// when a directory does not prove that it is the member's data.
var ErrNotMemberData = errors.New("not that member's data directory")

// CheckDataDir reports whether dir is member name's data directory: a real
// directory (not a symbolic link) owned by uid whose member.json names
// name. A directory that does not exist passes. Root checks this before it
// deletes a data directory whose path it read from a configuration file.
func CheckDataDir(dir, name string, uid uint32) error {
	return safefs.CheckDir(dir, isMemberData(dir, name, uid))
}

// RemoveDataDir deletes member name's data directory once CheckDataDir
// approves it, through safefs.RemoveDir: nothing outside dir is touched,
// whatever links its contents hold.
func RemoveDataDir(dir, name string, uid uint32) error {
	return safefs.RemoveDir(dir, isMemberData(dir, name, uid))
}

func isMemberData(dir, name string, uid uint32) func(*os.Root, uint32) error {
	return func(r *os.Root, owner uint32) error {
		refuse := func(why string) error {
			return fmt.Errorf("data dir %s %s: %w, refusing to delete it; check data_dir in the member's configuration, or delete the data yourself", dir, why, ErrNotMemberData)
		}
		if owner != uid {
			return refuse(fmt.Sprintf("belongs to uid %d, not to the account the member runs as (uid %d)", owner, uid))
		}
		raw, err := r.ReadFile(identityFile)
		if err != nil {
			return refuse("holds no readable " + identityFile)
		}
		var id identity
		if err := json.Unmarshal(raw, &id); err != nil || id.Format != 1 || id.Name != name {
			return refuse(fmt.Sprintf("holds no %s naming member %s", identityFile, name))
		}
		return nil
	}
}

// ClearFresh removes what a failed first start created in a directory that
// was empty before, so that the next attempt starts clean.
func ClearFresh(dir string) {
	for _, n := range []string{identityFile, WALDir, "snapshots", lockFile} {
		os.RemoveAll(filepath.Join(dir, n))
	}
}

// LockDataDir takes an exclusive lock on dir for this process, so that two
// members never share a data directory. The lock ends with the process or
// when the returned file is closed.
func LockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another running member", dir)
	}
	return f, nil
}

// MkdirPrivate creates dir 0700; the parents it has to create are 0755, so
// that a shared prefix stays traversable by the other accounts that use it
// (PostgreSQL's, when pgherd runs as root).
func MkdirPrivate(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}
