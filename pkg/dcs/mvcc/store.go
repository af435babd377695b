// Package mvcc is the deterministic state machine of pgherd's embedded DCS: an in-memory multi-version
// key-value store with etcd v3 semantics (one global revision, per-key create/mod revision and version,
// leases, a bounded event history for watches and historic reads).
//
// The write methods (Put, DeleteRange, Txn, LeaseGrant, LeaseRevoke, LeaseRefresh, Compact) are the
// apply side: the Raft FSM calls them for each committed entry, in log order, on every member. Given the
// same sequence of calls they produce the same state, responses, events and snapshots on every member;
// the only local, non-replicated state is each lease's deadline on this member's monotonic clock.
// The read methods (Range, LeaseTimeToLive, Leases, Expired, Rev, CompactRev, Watch) may run
// concurrently with the apply side.
//
// Requests and responses are etcd's own wire types (etcdserverpb, mvccpb). Every response carries a
// Header with only Revision set: the store revision after the operation (for nested txn responses too,
// as etcd does). The node layer adds ClusterId, MemberId and RaftTerm to the top-level header.
//
// Key-values, events and their byte slices handed out by the store are shared with it and immutable:
// callers must not modify them (setting the Header of a response is fine: responses are fresh).
//
// Errors are etcd's gRPC status errors from rpctypes, so the gRPC layer can return them as they are and
// the gateway can print their message (status.Convert(err).Message()) byte for byte as etcd does.
package mvcc

import (
	"bytes"
	"slices"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Limits shared with the node layer, equal to etcd's defaults.
const (
	// MaxRequestBytes is the largest request the node accepts (etcd's --max-request-bytes default, 1.5 MiB).
	MaxRequestBytes = 3 << 19
	// MaxTxnOps is the largest number of compares, or of operations in one branch, of a txn.
	MaxTxnOps = 128
	// MaxLeaseTTL is the largest lease TTL in seconds, as etcd.
	MaxLeaseTTL = 9000000000
	// DefaultHistoryLimit is the number of revisions kept for watch replay and historic reads when
	// Options.HistoryLimit is zero: hours of a Patroni cluster's writes in about 1.3 MB (DESIGN.md).
	DefaultHistoryLimit = 4096
)

// Errors returned by the store. They are etcd's gRPC errors, with etcd's messages.
var (
	ErrCompacted         = rpctypes.ErrGRPCCompacted
	ErrFutureRev         = rpctypes.ErrGRPCFutureRev
	ErrLeaseNotFound     = rpctypes.ErrGRPCLeaseNotFound
	ErrLeaseExists       = rpctypes.ErrGRPCLeaseExist
	ErrLeaseTTLTooLarge  = rpctypes.ErrGRPCLeaseTTLTooLarge
	ErrKeyNotFound       = rpctypes.ErrGRPCKeyNotFound
	ErrEmptyKey          = rpctypes.ErrGRPCEmptyKey
	ErrValueProvided     = rpctypes.ErrGRPCValueProvided
	ErrLeaseProvided     = rpctypes.ErrGRPCLeaseProvided
	ErrTooManyOps        = rpctypes.ErrGRPCTooManyOps
	ErrDuplicateKey      = rpctypes.ErrGRPCDuplicateKey
	ErrInvalidSortOption = rpctypes.ErrGRPCInvalidSortOption
	// ErrLeaseIDZero refuses a grant without an ID: the proposer must choose a non-zero one.
	ErrLeaseIDZero = status.Error(codes.InvalidArgument, "mvcc: lease grant needs a non-zero ID chosen by the proposer")
)

// Options configure a Store.
type Options struct {
	// HistoryLimit is the number of most recent revisions whose events are kept for watch replay and
	// historic reads. Older revisions are compacted automatically (deterministically: it depends only on
	// the applied sequence). Zero means DefaultHistoryLimit.
	HistoryLimit int
	// Now is the local monotonic clock used for lease deadlines. Nil means time.Now. Tests set it.
	Now func() time.Time
}

// Store is the MVCC key-value store. The zero value is not usable: call New.
type Store struct {
	opts Options

	mu         sync.RWMutex
	rev        int64                 // current revision; 1 for an empty store
	compactRev int64                 // revisions below it cannot be read; watches must start above it
	kvs        []*mvccpb.KeyValue    // live keys, sorted by key; each *KeyValue is immutable
	history    []revision            // events of revisions (compactRev, rev], oldest first
	leases     map[int64]*lease      // granted leases by ID
	watchers   map[*Watcher]struct{} // live watchers, woken after each new revision
}

// revision holds the events of one revision in the order they happened.
type revision struct {
	rev    int64
	events []*mvccpb.Event // PrevKv always set when a previous value existed (needed to undo)
}

// New returns an empty store at revision 1.
func New(opts Options) *Store {
	if opts.HistoryLimit <= 0 {
		opts.HistoryLimit = DefaultHistoryLimit
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{
		opts:     opts,
		rev:      1,
		leases:   map[int64]*lease{},
		watchers: map[*Watcher]struct{}{},
	}
}

// Rev returns the current revision.
func (s *Store) Rev() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rev
}

// CompactRev returns the compacted revision: reads below it fail with ErrCompacted and watches must
// start above it. It rises with Compact and with the HistoryLimit.
func (s *Store) CompactRev() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.compactRev
}

// Compact discards the history of revisions up to and including rev, as etcd's compaction: afterwards
// reads at revisions below rev fail with ErrCompacted, and so do watches starting at or below rev.
func (s *Store) Compact(rev int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev <= s.compactRev {
		return ErrCompacted
	}
	if rev > s.rev {
		return ErrFutureRev
	}
	s.compactTo(rev)
	s.wakeWatchers()
	return nil
}

func (s *Store) compactTo(rev int64) {
	s.compactRev = rev
	n := 0
	for n < len(s.history) && s.history[n].rev <= rev {
		s.history[n] = revision{} // drop references so old values can be freed
		n++
	}
	// Re-slicing keeps the dropped slots in the backing array until the next append grows it, which
	// copies only the live part: amortised O(1), no ring-buffer bookkeeping.
	s.history = s.history[n:]
}

func (s *Store) header() *pb.ResponseHeader { return &pb.ResponseHeader{Revision: s.rev} }

// find returns the index of key in s.kvs and whether it is there.
func (s *Store) find(key []byte) (int, bool) {
	return slices.BinarySearchFunc(s.kvs, key, func(kv *mvccpb.KeyValue, k []byte) int {
		return bytes.Compare(kv.Key, k)
	})
}

func (s *Store) get(key []byte) *mvccpb.KeyValue {
	if i, ok := s.find(key); ok {
		return s.kvs[i]
	}
	return nil
}

// span returns the live key-values in [key, end) with etcd's range conventions: an empty end means
// the single key, end "\x00" means every key >= key. The slice is a copy; its elements are shared.
func (s *Store) span(key, end []byte) []*mvccpb.KeyValue {
	if len(end) == 0 {
		if kv := s.get(key); kv != nil {
			return []*mvccpb.KeyValue{kv}
		}
		return nil
	}
	lo, _ := s.find(key)
	hi := len(s.kvs)
	if !isAll(end) {
		hi, _ = s.find(end)
	}
	if hi <= lo {
		return nil
	}
	return slices.Clone(s.kvs[lo:hi])
}

func isAll(end []byte) bool { return len(end) == 1 && end[0] == 0 }

// inRange reports whether k is in the range given by key and end (conventions as span).
func inRange(k, key, end []byte) bool {
	if len(end) == 0 {
		return bytes.Equal(k, key)
	}
	return bytes.Compare(k, key) >= 0 && (isAll(end) || bytes.Compare(k, end) < 0)
}

// write accumulates the changes of one revision being applied; commit publishes them.
type write struct {
	rev    int64
	events []*mvccpb.Event
}

func (s *Store) begin() *write { return &write{rev: s.rev + 1} }

// header is the header of a response given while the write is being applied: the new revision once
// something changed, the current one before.
func (w *write) header(s *Store) *pb.ResponseHeader {
	if len(w.events) > 0 {
		return &pb.ResponseHeader{Revision: w.rev}
	}
	return s.header()
}

// put stores a new version of key and records the event; it returns the previous key-value.
// Callers have validated the request.
func (s *Store) put(w *write, key, value []byte, leaseID int64, ignoreValue, ignoreLease bool) *mvccpb.KeyValue {
	i, found := s.find(key)
	var prev *mvccpb.KeyValue
	kv := &mvccpb.KeyValue{Key: key, Value: value, Lease: leaseID, CreateRevision: w.rev, ModRevision: w.rev, Version: 1}
	if found {
		prev = s.kvs[i]
		kv.Key = prev.Key
		kv.CreateRevision = prev.CreateRevision
		kv.Version = prev.Version + 1
		if ignoreValue {
			kv.Value = prev.Value
		}
		if ignoreLease {
			kv.Lease = prev.Lease
		}
		s.kvs[i] = kv
	} else {
		kv.Key = bytes.Clone(key)
		s.kvs = slices.Insert(s.kvs, i, kv)
	}
	if !ignoreValue {
		kv.Value = bytes.Clone(value)
	}
	if prev != nil && prev.Lease != kv.Lease {
		s.detach(prev.Lease, prev.Key)
	}
	s.attach(kv.Lease, kv.Key)
	w.events = append(w.events, &mvccpb.Event{Type: mvccpb.PUT, Kv: kv, PrevKv: prev})
	return prev
}

// deleteSpan deletes the live keys in the range and records one DELETE event per key; it returns the
// deleted key-values.
func (s *Store) deleteSpan(w *write, key, end []byte) []*mvccpb.KeyValue {
	gone := s.span(key, end)
	for _, prev := range gone {
		i, _ := s.find(prev.Key)
		s.kvs = slices.Delete(s.kvs, i, i+1)
		s.detach(prev.Lease, prev.Key)
		w.events = append(w.events, &mvccpb.Event{
			Type:   mvccpb.DELETE,
			Kv:     &mvccpb.KeyValue{Key: prev.Key, ModRevision: w.rev},
			PrevKv: prev,
		})
	}
	return gone
}

// commit makes the write's revision current if it changed anything, trims the history to the limit
// and wakes the watchers. A write without events leaves the revision alone, as etcd.
func (s *Store) commit(w *write) {
	if len(w.events) == 0 {
		return
	}
	s.rev = w.rev
	s.history = append(s.history, revision{rev: w.rev, events: w.events})
	if keep := int64(s.opts.HistoryLimit); s.rev-s.compactRev > keep {
		s.compactTo(s.rev - keep)
	}
	s.wakeWatchers()
}
