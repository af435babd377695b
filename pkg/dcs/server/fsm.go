package server

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/raft"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/dcs/mvcc"
)

// fsm is the Raft state machine: it decodes each committed command and
// hands it to the MVCC store, plus the small member table. It keeps no
// other state, so a snapshot is the store's snapshot and the table.
type fsm struct {
	store *mvcc.Store
	log   *slog.Logger

	mu        sync.RWMutex
	members   map[string]dcs.Member
	clusterID uint64
	alarms    []*pb.AlarmMember // active alarms, sorted by member and type (alarm.go)
	version   int               // the cluster version (version.go); 0 reads as 1
}

// applyResult is what FSM.Apply returns through raft's ApplyFuture.
type applyResult struct {
	resp message // nil for commands without a response
	err  error
}

func newFSM(historyLimit int) *fsm {
	f := &fsm{log: slog.Default(), members: map[string]dcs.Member{}}
	f.store = mvcc.New(mvcc.Options{HistoryLimit: historyLimit, Held: f.declaredLeaderKey})
	return f
}

// declaredLeaderKey reports whether key is a Patroni leader key that a
// data member declared beside its Patroni member (dcs.FastFailover), once
// the cluster runs at versionHeldLeader: the store then refuses a put that
// changes its holder while the holder's lease lives. Patroni 3.0.2 takes
// the key with a compare (create_revision 0) and gives it up with a delete
// or the lease's end; but a Patroni resumed after a freeze, whose cached
// view still shows it holding the key, rewrites it with a plain put
// (etcd3.py, _update_leader), which would take it back from the member
// promoted meanwhile. Both inputs are replicated state, read by the
// store's apply on the FSM goroutine.
func (f *fsm) declaredLeaderKey(key []byte) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.version < versionHeldLeader {
		return false
	}
	for _, m := range f.members {
		if m.Role == dcs.RoleData && m.FastFailover.Declared() && m.FastFailover.LeaderKey == string(key) {
			return true
		}
	}
	return false
}

// errApplyPanic answers an entry whose apply panicked.
var errApplyPanic = status.Error(codes.Internal, "etcdserver: internal error applying the request")

// Apply implements raft.FSM. An entry that cannot be decoded or (from
// cluster version versionLimits on, so that members of two versions never
// diverge) fails checkCommand is answered with that error and changes
// nothing: every
// member decodes and checks the same bytes the same way, so the answer is
// the same everywhere. A panic (a bug, not an input: checkCommand refuses
// what the store does not handle) is the last resort: the entry is
// answered with Internal, the panic is logged once with its stack, and
// the member goes on applying, as every other member does for that entry.
func (f *fsm) Apply(l *raft.Log) (res any) {
	if l.Type != raft.LogCommand {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			f.log.Error("apply panicked; the entry is answered with an internal error", "index", l.Index, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			res = &applyResult{err: errApplyPanic}
		}
	}()
	d, err := decodeCommand(l.Data)
	if err != nil {
		return &applyResult{err: fmt.Errorf("apply log %d: %w", l.Index, err)}
	}
	if f.allows(versionLimits) {
		if err := checkCommand(&d); err != nil {
			return &applyResult{err: err}
		}
	}
	return f.apply(d)
}

func (f *fsm) apply(d decoded) *applyResult {
	r := &applyResult{}
	if r.err = f.capped(d); r.err != nil {
		return r
	}
	switch d.op {
	case opPut:
		r.resp, r.err = nilSafe(f.store.Put(d.put))
	case opDeleteRange:
		r.resp, r.err = nilSafe(f.store.DeleteRange(d.del))
	case opTxn:
		r.resp, r.err = nilSafe(f.store.Txn(d.txn))
	case opLeaseGrant:
		r.resp, r.err = nilSafe(f.store.LeaseGrant(d.grant))
	case opLeaseRevoke:
		r.resp, r.err = nilSafe(f.store.LeaseRevoke(d.ints[0]))
	case opLeaseRefresh:
		r.resp, r.err = nilSafe(f.refresh(d.ints[0], d.ints[1]))
	case opCompact:
		r.err = f.store.Compact(d.ints[0])
	case opAlarm:
		r.resp, r.err = nilSafe(f.applyAlarm(d.alarm))
	case opClusterInit:
		f.mu.Lock()
		if f.clusterID == 0 {
			f.clusterID = uint64(d.ints[0])
		}
		f.mu.Unlock()
	case opClusterVersion:
		f.mu.Lock()
		// Never lowered. A version above applyVersion is recorded too:
		// this binary was downgraded below the cluster's rules, and the
		// node stops (version.go).
		if v := int(d.ints[0]); v > f.version {
			f.version = v
		}
		f.mu.Unlock()
	case opMemberSet:
		f.mu.Lock()
		f.members[d.member.Name] = *d.member
		f.mu.Unlock()
	case opMemberRemove:
		f.mu.Lock()
		delete(f.members, d.member.Name)
		f.mu.Unlock()
	}
	return r
}

// refresh renews a lease to its granted TTL. A lease that is already gone
// answers with TTL 0, which the gateway omits: etcd's "no such lease"
// keepalive answer.
func (f *fsm) refresh(id, ttl int64) (*pb.LeaseKeepAliveResponse, error) {
	resp, err := f.store.LeaseRefresh(id, ttl)
	if errors.Is(err, mvcc.ErrLeaseNotFound) {
		return &pb.LeaseKeepAliveResponse{ID: id, Header: &pb.ResponseHeader{Revision: f.store.Rev()}}, nil
	}
	return resp, err
}

// nilSafe turns a typed nil response into an untyped nil message.
func nilSafe[T message](m T, err error) (message, error) {
	var zero T
	if any(m) == any(zero) {
		return nil, err
	}
	return m, err
}

func (f *fsm) memberList() []dcs.Member {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return sortedMembers(f.members)
}

func (f *fsm) member(name string) (dcs.Member, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m, ok := f.members[name]
	return m, ok
}

func (f *fsm) cluster() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.clusterID
}

// maxSnapshotMeta bounds the member table of a snapshot (a few hundred
// bytes per member).
const maxSnapshotMeta = 16 << 20

// snapshotMagic and the cluster version at which it was taken start every
// snapshot ("pgherd-dcs-snapshot-v1\n" before cluster version 2, as every
// pgherd wrote), so that restoring anything else fails loudly instead of
// loading garbage, and a member refuses the state of a newer cluster
// version than it applies (version.go).
const snapshotMagic = "pgherd-dcs-snapshot-v"

// Snapshot implements raft.FSM. It runs on the FSM goroutine, so the
// table and the store are captured at the same log index.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	snap, err := f.store.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	meta, err := json.Marshal(snapshotMeta{ClusterID: f.clusterID, Members: sortedMembers(f.members), Version: f.version, Alarms: f.alarms})
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{version: max(f.version, 1), meta: meta, store: snap}, nil
}

type snapshotMeta struct {
	ClusterID uint64       `json:"cluster_id"`
	Version   int          `json:"cluster_version,omitempty"`
	Members   []dcs.Member `json:"members"`
	// Alarms are the active alarms (omitted when none, as before they existed).
	Alarms []*pb.AlarmMember `json:"alarms,omitempty"`
}

type fsmSnapshot struct {
	version int
	meta    []byte
	store   mvcc.Snapshot
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriter(sink)
	fmt.Fprintf(w, "%s%d\n", snapshotMagic, s.version)
	w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s.meta))))
	w.Write(s.meta)
	if _, err := s.store.WriteTo(w); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	if err := w.Flush(); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// Restore implements raft.FSM: it replaces the whole state.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	r := bufio.NewReader(rc)
	if err := readSnapshotHeader(r); err != nil {
		return err
	}
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxSnapshotMeta {
		// A snapshot may come from a peer (InstallSnapshot): refuse before allocating.
		return fmt.Errorf("restore snapshot: member table of %d bytes is larger than %d", size, maxSnapshotMeta)
	}
	raw := make([]byte, size)
	if _, err := io.ReadFull(r, raw); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	var meta snapshotMeta
	if err := json.Unmarshal(raw, &meta); err != nil {
		return fmt.Errorf("restore snapshot members: %w", err)
	}
	if err := f.store.Restore(r); err != nil {
		return fmt.Errorf("restore snapshot store: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clusterID = meta.ClusterID
	f.alarms = slices.DeleteFunc(meta.Alarms, func(m *pb.AlarmMember) bool { return m == nil })
	slices.SortFunc(f.alarms, compareAlarms)
	f.version = meta.Version
	f.members = map[string]dcs.Member{}
	for _, m := range meta.Members {
		f.members[m.Name] = m
	}
	return nil
}

// readSnapshotHeader reads the magic line and refuses a snapshot taken at
// a cluster version newer than this member applies.
func readSnapshotHeader(r *bufio.Reader) error {
	var line []byte // a short line: never read a foreign file whole
	for len(line) < len(snapshotMagic)+8 {
		b, err := r.ReadByte()
		if err != nil || b == '\n' {
			break
		}
		line = append(line, b)
	}
	v, perr := strconv.Atoi(strings.TrimPrefix(string(line), snapshotMagic))
	if !strings.HasPrefix(string(line), snapshotMagic) || perr != nil || v < 1 {
		return fmt.Errorf("restore snapshot: not a pgherd dcs snapshot")
	}
	if v > applyVersion {
		return fmt.Errorf("restore snapshot: it was taken at cluster version %d, newer than this pgherd-dcs applies (%d): upgrade pgherd on this member to the version the others run", v, applyVersion)
	}
	return nil
}

func sortedMembers(m map[string]dcs.Member) []dcs.Member {
	out := make([]dcs.Member, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
