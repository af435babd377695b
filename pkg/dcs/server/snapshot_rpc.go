package server

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// snapshotChunk is the size of each streamed piece, as etcd's.
const snapshotChunk = 32 * 1024

// Snapshot serves etcd's Maintenance.Snapshot: this member's applied state
// as an etcd 3.4 backend database (mvcc/backend.go), streamed in chunks
// that count down RemainingBytes, then the SHA-256 of the database as the
// last chunk, exactly as etcd sends it: `etcdctl snapshot save` writes
// what it receives, `etcdctl snapshot status|restore` read it, and
// `pgherd dcs restore` checks the hash before anything else. As etcd, the
// state is the member's own: a backup may be taken from any member,
// including one cut off from the others.
func (m *maintenanceServer) Snapshot(_ *pb.SnapshotRequest, srv pb.Maintenance_SnapshotServer) error {
	fail := func(err error) error { return status.Errorf(codes.Internal, "etcdserver: snapshot: %v", err) }
	n := m.s.node
	path := filepath.Join(n.cfg.DataDir, fmt.Sprintf("snapshot-%d.db.part", time.Now().UnixNano()))
	defer os.Remove(path)
	if err := n.writeSnapshotFile(path); err != nil {
		return fail(err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	buf := make([]byte, snapshotChunk)
	for left := fi.Size() - sha256.Size; left > 0; {
		k, err := io.ReadFull(f, buf[:min(left, snapshotChunk)])
		if err != nil {
			return fail(err)
		}
		left -= int64(k)
		if err := srv.Send(&pb.SnapshotResponse{Header: m.s.snapshotHeader(), RemainingBytes: uint64(left), Blob: buf[:k]}); err != nil {
			return err
		}
	}
	sum := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, sum); err != nil {
		return fail(err)
	}
	return srv.Send(&pb.SnapshotResponse{Header: m.s.snapshotHeader(), Blob: sum})
}

func (s *Server) snapshotHeader() *pb.ResponseHeader {
	h := &pb.ResponseHeader{Revision: s.node.fsm.store.Rev()}
	s.stampNoRev(h)
	return h
}

// writeSnapshotFile writes the member's applied state at path as the file
// `etcdctl snapshot save` writes (an etcd backend database, then its
// SHA-256), mode 0600, whole or not at all: written beside path,
// fsynced, renamed.
func (n *node) writeSnapshotFile(path string) error {
	snap, err := n.fsm.store.Snapshot()
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	os.Remove(tmp)
	defer os.Remove(tmp)
	if err := snap.WriteBackend(tmp); err != nil {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if _, err := f.Write(h.Sum(nil)); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// snapshotStamp names periodic snapshots: NAME-20260102T150405Z.db.
const snapshotStamp = "20060102T150405Z"

// startSnapshots writes a snapshot to the configured directory every
// interval (none when no directory is set), keeping the newest ones.
func (n *node) startSnapshots() {
	sc := n.cfg.Snapshots
	if sc.Dir == "" {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		t := time.NewTicker(sc.Interval)
		defer t.Stop()
		for {
			select {
			case <-n.closed:
				return
			case now := <-t.C:
				path := filepath.Join(sc.Dir, n.cfg.Name+"-"+now.UTC().Format(snapshotStamp)+".db")
				if err := n.writeSnapshotFile(path); err != nil {
					n.log.Warn("periodic snapshot failed", "path", path, "err", err)
					continue
				}
				n.log.Debug("periodic snapshot written", "path", path)
				n.pruneSnapshots(sc.Dir, sc.Keep)
			}
		}
	}()
}

// pruneSnapshots removes this member's periodic snapshots in dir beyond
// the newest keep. Other files are never touched.
func (n *node) pruneSnapshots(dir string, keep int) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		n.log.Warn("list periodic snapshots", "dir", dir, "err", err)
		return
	}
	var ours []string
	for _, e := range ents {
		stamp, ok := strings.CutPrefix(e.Name(), n.cfg.Name+"-")
		stamp, ok2 := strings.CutSuffix(stamp, ".db")
		if _, err := time.Parse(snapshotStamp, stamp); ok && ok2 && err == nil && e.Type().IsRegular() {
			ours = append(ours, e.Name())
		}
	}
	slices.Sort(ours) // the stamps sort by time
	for _, name := range ours[:max(len(ours)-keep, 0)] {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			n.log.Warn("remove old periodic snapshot", "file", name, "err", err)
		}
	}
}
