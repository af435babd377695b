package dcs

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/pgherd/pgherd/pkg/dcs/mvcc"
)

// fsm is the Raft state machine: it decodes each committed command and
// hands it to the MVCC store, plus the small member table. It keeps no
// other state, so a snapshot is the store's snapshot and the table.
type fsm struct {
	store *mvcc.Store

	mu        sync.RWMutex
	members   map[string]Member
	clusterID uint64
}

// applyResult is what FSM.Apply returns through raft's ApplyFuture.
type applyResult struct {
	resp message // nil for commands without a response
	err  error
}

func newFSM(historyLimit int) *fsm {
	return &fsm{store: mvcc.New(mvcc.Options{HistoryLimit: historyLimit}), members: map[string]Member{}}
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	d, err := decodeCommand(l.Data)
	if err != nil {
		// Every member decodes the same bytes the same way, so rejecting
		// here is deterministic.
		return &applyResult{err: fmt.Errorf("apply log %d: %w", l.Index, err)}
	}
	return f.apply(d)
}

func (f *fsm) apply(d decoded) *applyResult {
	r := &applyResult{}
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
	case opClusterInit:
		f.mu.Lock()
		if f.clusterID == 0 {
			f.clusterID = uint64(d.ints[0])
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

func (f *fsm) memberList() []Member {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return sortedMembers(f.members)
}

func (f *fsm) member(name string) (Member, bool) {
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

// Snapshot implements raft.FSM. Until the store can serialise itself,
// snapshots are refused: raft keeps the whole log and retries later.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return nil, errors.New("dcs: state machine snapshots are not implemented yet")
}

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	rc.Close()
	return errors.New("dcs: state machine snapshots are not implemented yet")
}
