package instance

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"

	"github.com/pgherd/pgherd/pkg/safefs"
)

// An instance created with a separate WAL directory (initdb -X) has a
// pg_wal symbolic link in its data directory: that link, not today's
// postgresql.waldir template, says where its WAL is. Drop deletes that
// directory only once it has proved to be this instance's WAL (walCheck).

// walDir returns where the WAL of the data directory datadir lives: the
// target of its pg_wal link (separate is true), or pg_wal itself.
func walDir(datadir string) (dir string, separate bool) {
	link := filepath.Join(datadir, "pg_wal")
	target, err := os.Readlink(link)
	if err != nil {
		return link, false
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(datadir, target)
	}
	return filepath.Clean(target), true
}

// walNames are the entries a WAL directory holds: segments (possibly
// .partial), timeline histories, backup labels, archive status, WAL
// summaries and a segment being created.
// Compiled when first used: most commands never look into a WAL directory.
var walNames = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([0-9A-F]{24}(\.partial)?|[0-9A-F]{8}\.history|[0-9A-F]{24}\.[0-9A-F]{8}\.backup|archive_status|summaries|xlogtemp\.[0-9]+)$`)
})

var segmentName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9A-F]{24}$`) })

// systemID reads the database system identifier from datadir's pg_control
// (its first field). The WAL segments of the same cluster carry it.
func systemID(datadir string) (uint64, error) {
	f, err := os.OpenFile(filepath.Join(datadir, "global", "pg_control"), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [8]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return 0, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// walCheck approves a WAL directory opened at dir for deletion when it
// belongs to the instance whose data directory is owned by owner and
// whose system identifier is sysid: no symbolic link on the way to it
// (only pg_wal's own), owned by owner, holding nothing but WAL, and its
// written segments naming sysid (a segment not written yet is zeros).
func walCheck(dir string, owner uint32, sysid uint64) func(*os.Root, uint32) error {
	return func(r *os.Root, uid uint32) error {
		refuse := func(why string) error {
			return fmt.Errorf("the WAL directory %s that pg_wal points at %s: %w; delete it yourself if it must go", dir, why, safefs.ErrNotOurs)
		}
		if real, err := filepath.EvalSymlinks(dir); err != nil || real != dir {
			return refuse("is reached through a symbolic link")
		}
		if uid != owner {
			return refuse(fmt.Sprintf("belongs to uid %d, not to the data directory's owner (uid %d)", uid, owner))
		}
		names, err := safefs.Names(r)
		if err != nil {
			return err
		}
		matched := false
		for _, n := range names {
			if !walNames().MatchString(n) {
				return refuse("holds " + n + ", which is not WAL")
			}
			if !segmentName().MatchString(n) {
				continue
			}
			id, err := segmentSystemID(r, n)
			if err != nil {
				return refuse(fmt.Sprintf("holds segment %s that cannot be read (%v)", n, err))
			}
			switch id {
			case sysid:
				matched = true
			case 0:
			default:
				return refuse(fmt.Sprintf("holds segment %s of another cluster (system identifier %d, not %d)", n, id, sysid))
			}
		}
		if !matched && len(names) > 0 {
			return refuse(fmt.Sprintf("holds no segment of this cluster (system identifier %d)", sysid))
		}
		return nil
	}
}

// segmentSystemID reads xlp_sysid from a segment's long page header: it
// follows the 24-byte standard header.
func segmentSystemID(r *os.Root, name string) (uint64, error) {
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return 0, errors.New("not a regular file")
	}
	var b [32]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[24:]), nil
}

// separateWAL returns the instance's separate WAL directory and the check
// that approves its deletion, or "" when WAL lives inside the data
// directory (it goes with it).
func separateWAL(i *Instance) (string, func(*os.Root, uint32) error, error) {
	dir, separate := walDir(i.DataDir)
	if !separate {
		return "", nil, nil
	}
	fi, err := os.Lstat(i.DataDir)
	if err != nil {
		return "", nil, err
	}
	sysid, err := systemID(i.DataDir)
	if err != nil {
		return "", nil, fmt.Errorf("cannot tell whether %s is the WAL of %s: %w; nothing was dropped", dir, i.ID(), err)
	}
	return dir, walCheck(dir, fi.Sys().(*syscall.Stat_t).Uid, sysid), nil
}
