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
	// DefaultHistoryBytes bounds the accounted bytes of the history (Usage) when Options.HistoryBytes
	// is zero: 4096 revisions of Patroni's writes fit in it, a few values of a megabyte do not.
	DefaultHistoryBytes = 4 << 20
)

// Accounting estimates of the heap a stored item costs beyond its key and value bytes (structs, slice
// headers, allocation rounding). They are constants, so Usage is the same on every member.
const (
	kvOverhead    = 128 // one *mvccpb.KeyValue
	eventOverhead = 64  // one *mvccpb.Event (a DELETE's tombstone key-value included)
	leaseOverhead = 64  // one lease, as etcd's quota counts it
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
	// ErrHeld refuses a put that would change a held key (Options.Held) while its lease lives.
	// Aborted, not FailedPrecondition: Patroni 3.0.2 retries FailedPrecondition until its
	// retry_timeout, and takes any other code as a plain refusal.
	ErrHeld = status.Error(codes.Aborted, "pgherd: the key is held under a live lease and only its holder may change it: delete it or let its lease end first")
)

// Options configure a Store.
type Options struct {
	// HistoryLimit is the number of most recent revisions whose events are kept for watch replay and
	// historic reads. Older revisions are compacted automatically (deterministically: it depends only on
	// the applied sequence). Zero means DefaultHistoryLimit.
	HistoryLimit int
	// HistoryBytes bounds the accounted bytes of the history: the oldest revisions are compacted
	// (their old values dropped first) until it fits, always keeping the newest revision. Zero means
	// DefaultHistoryBytes. It must be the same on every member, as HistoryLimit.
	HistoryBytes int64
	// Now is the local monotonic clock used for lease deadlines. Nil means time.Now. Tests set it.
	Now func() time.Time
	// Held, when set, names the keys that only their holder may rewrite: while such a key exists
	// attached to a live lease, a put that would change its value is refused with ErrHeld and
	// changes nothing (a delete is not refused). It must answer the same on every member at the
	// same revision: the node derives it from replicated state only.
	Held func(key []byte) bool
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
	liveBytes  int64                 // accounted bytes of kvs (kvCost each)
	histBytes  int64                 // accounted bytes of history (eventCost each)
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
	if opts.HistoryBytes <= 0 {
		opts.HistoryBytes = DefaultHistoryBytes
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
		s.histBytes -= revisionCost(s.history[n])
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
		s.liveBytes -= kvCost(prev)
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
	s.liveBytes += kvCost(kv)
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
		s.liveBytes -= kvCost(prev)
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
	h := revision{rev: w.rev, events: w.events}
	s.history = append(s.history, h)
	s.histBytes += revisionCost(h)
	s.trimHistory()
	s.wakeWatchers()
}

// trimHistory compacts the oldest revisions until the history holds at most HistoryLimit revisions
// and HistoryBytes accounted bytes, keeping the newest revision whatever its size (a watcher at the
// head is never cancelled by one large write). It depends only on the applied sequence.
func (s *Store) trimHistory() {
	target := s.rev - int64(s.opts.HistoryLimit)
	over := s.histBytes - s.opts.HistoryBytes
	for i := 0; over > 0 && i < len(s.history)-1; i++ {
		over -= revisionCost(s.history[i])
		target = max(target, s.history[i].rev)
	}
	if target > s.compactRev {
		s.compactTo(target)
	}
}

// Usage is the accounted size of the replicated state in bytes: live keys and values, the history
// (each superseded value counted once, while an event still refers to it) and leases, each with a
// fixed overhead. It is a function of the applied sequence only, so every member computes the same
// figure: the space quota is checked against it.
func (s *Store) Usage() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.liveBytes + s.histBytes + int64(len(s.leases))*leaseOverhead
}

// HistoryBytes returns the accounted bytes of the history alone (part of Usage).
func (s *Store) HistoryBytes() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.histBytes
}

func kvCost(kv *mvccpb.KeyValue) int64 { return int64(len(kv.Key)+len(kv.Value)) + kvOverhead }

// eventCost counts an event and the value it replaced: a value stays reachable exactly while the
// event that superseded it is in the history (the new value is live, or the previous value of a
// later event), so each stored version is counted once.
func eventCost(ev *mvccpb.Event) int64 {
	c := int64(eventOverhead)
	if ev.PrevKv != nil {
		c += kvCost(ev.PrevKv)
	}
	return c
}

func revisionCost(h revision) int64 {
	var c int64
	for _, ev := range h.events {
		c += eventCost(ev)
	}
	return c
}
