package server

import (
	"crypto/sha256"
	"io"
	"os"

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
	snap, err := m.s.node.fsm.store.Snapshot()
	if err != nil {
		return status.Errorf(codes.Internal, "etcdserver: snapshot: %v", err)
	}
	f, err := os.CreateTemp(m.s.node.cfg.DataDir, "snapshot-*.db.part")
	if err != nil {
		return status.Errorf(codes.Internal, "etcdserver: snapshot: %v", err)
	}
	path := f.Name()
	f.Close()
	os.Remove(path) // bbolt creates it with its own mode
	defer os.Remove(path)
	if err := snap.WriteBackend(path); err != nil {
		return status.Errorf(codes.Internal, "etcdserver: snapshot: %v", err)
	}
	f, err = os.Open(path)
	if err != nil {
		return status.Errorf(codes.Internal, "etcdserver: snapshot: %v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return status.Errorf(codes.Internal, "etcdserver: snapshot: %v", err)
	}
	h := sha256.New()
	buf := make([]byte, snapshotChunk)
	for left := fi.Size(); left > 0; {
		n, err := io.ReadFull(f, buf[:min(left, snapshotChunk)])
		if err != nil {
			return status.Errorf(codes.Internal, "etcdserver: snapshot: %v", err)
		}
		left -= int64(n)
		h.Write(buf[:n])
		if err := srv.Send(&pb.SnapshotResponse{Header: m.s.snapshotHeader(), RemainingBytes: uint64(left), Blob: buf[:n]}); err != nil {
			return err
		}
	}
	return srv.Send(&pb.SnapshotResponse{Header: m.s.snapshotHeader(), Blob: h.Sum(nil)})
}

func (s *Server) snapshotHeader() *pb.ResponseHeader {
	h := &pb.ResponseHeader{Revision: s.node.fsm.store.Rev()}
	s.stampNoRev(h)
	return h
}
