package dcs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs/gateway"
	"github.com/pgherd/pgherd/pkg/site"
)

// SnapshotInfo describes a snapshot file written by SaveSnapshot.
type SnapshotInfo struct {
	Path     string `json:"path"`
	Bytes    int64  `json:"bytes"`
	Revision int64  `json:"revision"`
	SHA256   string `json:"sha256"` // of the database, as recorded at the file's end
}

// ErrBadSnapshot is returned for a snapshot file that is truncated,
// damaged or not a snapshot at all.
var ErrBadSnapshot = errors.New("not a complete DCS snapshot")

// snapshotTimeout bounds SaveSnapshot's wait for the member's answer, and
// then for each part of it.
var snapshotTimeout = 30 * time.Second

// SaveSnapshot fetches the snapshot of the member whose etcd API is at
// clientURL (etcd's Maintenance.Snapshot, through its JSON gateway) and
// writes it at path: an etcd backend database followed by its SHA-256,
// the file `etcdctl snapshot save` writes. The file appears whole or not
// at all (written beside path, fsynced, renamed; mode 0600), and only once
// its digest matches what the member sent.
func SaveSnapshot(ctx context.Context, clientURL string, tlsc TLSConfig, path string) (SnapshotInfo, error) {
	info := SnapshotInfo{Path: path}
	tc, err := tlsc.Client()
	if err != nil {
		return info, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.part")
	if err != nil {
		return info, fmt.Errorf("write snapshot: %w", err)
	}
	defer func() {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	gw, err := gateway.New(gateway.Config{Endpoints: []string{strings.TrimSuffix(clientURL, "/")}, TLS: tc, Timeout: snapshotTimeout, What: "member"})
	if err != nil {
		return info, err
	}
	defer gw.Close()
	body, err := gw.Stream(ctx, "/v3/maintenance/snapshot", struct{}{})
	if err != nil {
		return info, fmt.Errorf("snapshot from %s: %w", clientURL, err)
	}
	defer body.Close()
	if info.Revision, info.Bytes, err = copySnapshotStream(body, f); err != nil {
		return info, fmt.Errorf("snapshot from %s: %w", clientURL, err)
	}
	if info.SHA256, err = checkSnapshot(f.Name()); err != nil {
		return info, fmt.Errorf("snapshot from %s: %w", clientURL, err)
	}
	if err := f.Sync(); err != nil {
		return info, fmt.Errorf("write snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return info, fmt.Errorf("write snapshot: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		f = nil
		return info, fmt.Errorf("write snapshot: %w", err)
	}
	f = nil
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return info, nil
}

// copySnapshotStream writes the blobs of the gateway's stream of
// SnapshotResponse messages to w; it returns the revision in the headers
// and the bytes written.
func copySnapshotStream(body io.Reader, w io.Writer) (rev, n int64, err error) {
	dec := json.NewDecoder(body)
	for {
		var msg struct {
			Result *struct {
				Header *struct {
					Revision string `json:"revision"`
				} `json:"header"`
				Blob []byte `json:"blob"`
			} `json:"result"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return rev, n, nil
		} else if err != nil {
			return rev, n, fmt.Errorf("read: %w", err)
		}
		if msg.Error != nil {
			return rev, n, errors.New(msg.Error.Message)
		}
		if msg.Result == nil {
			continue
		}
		if msg.Result.Header != nil && rev == 0 {
			rev, _ = strconv.ParseInt(msg.Result.Header.Revision, 10, 64)
		}
		m, err := w.Write(msg.Result.Blob)
		n += int64(m)
		if err != nil {
			return rev, n, err
		}
	}
}

// SnapshotSchedule makes a member write its snapshot to Dir every
// Interval, keeping the newest Keep files (NAME-YYYYMMDDTHHMMSSZ.db);
// none when Dir is empty.
type SnapshotSchedule struct {
	Dir      string        `yaml:"dir,omitempty"`
	Interval time.Duration `yaml:"interval,omitempty"`
	Keep     int           `yaml:"keep,omitempty"`
}

// ScheduleOf is the schedule site.yaml's patroni.dcs.embedded.snapshots
// gives new members: none without a dir; a relative dir is under prefix.
func ScheduleOf(prefix string, sn site.DCSSnapshots) SnapshotSchedule {
	if sn.Dir == "" {
		return SnapshotSchedule{}
	}
	dir := sn.Dir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(prefix, dir)
	}
	return SnapshotSchedule{Dir: dir, Interval: time.Duration(sn.Interval) * time.Second, Keep: sn.Keep}
}

// validate checks a schedule and fills its defaults (hourly, 24 kept).
func (s *SnapshotSchedule) validate() error {
	if s.Dir == "" {
		return nil
	}
	if !filepath.IsAbs(s.Dir) {
		return fmt.Errorf("snapshots.dir %q: want an absolute path", s.Dir)
	}
	if s.Interval == 0 {
		s.Interval = time.Hour
	}
	if s.Keep == 0 {
		s.Keep = 24
	}
	if s.Interval < time.Second || s.Keep < 1 {
		return fmt.Errorf("snapshots: interval %s and keep %d: want at least 1s and 1", s.Interval, s.Keep)
	}
	return nil
}

// CheckSnapshotFile verifies that the file at path is complete: a
// database followed by its SHA-256, as SaveSnapshot and `etcdctl
// snapshot save` write it. It reads the file once.
func CheckSnapshotFile(path string) error {
	_, err := checkSnapshot(path)
	return err
}

// checkSnapshot is CheckSnapshotFile; it also returns the digest in hex.
func checkSnapshot(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	size := fi.Size()
	// A bbolt database is whole pages (multiples of 512 bytes), as etcd checks.
	if !fi.Mode().IsRegular() || size < 512+sha256.Size || size%512 != sha256.Size {
		return "", fmt.Errorf("snapshot %s (%d bytes) does not end with the SHA-256 of a database: it is truncated or not a snapshot from `pgherd dcs snapshot save` or `etcdctl snapshot save`: %w", path, size, ErrBadSnapshot)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, size-sha256.Size); err != nil {
		return "", fmt.Errorf("read snapshot %s: %w", path, err)
	}
	sum := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, sum); err != nil {
		return "", fmt.Errorf("read snapshot %s: %w", path, err)
	}
	if !bytes.Equal(sum, h.Sum(nil)) {
		return "", fmt.Errorf("snapshot %s does not match the SHA-256 at its end: it is damaged or truncated: %w", path, ErrBadSnapshot)
	}
	return hex.EncodeToString(sum), nil
}
