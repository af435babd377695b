package mvcc

import (
	"bytes"
	"sort"
	"sync"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Watcher delivers the events of one watch in revision order, with nothing missed and nothing repeated:
// first those still in the history, then new ones as they are applied. Each receive is a Batch: every
// event from the watcher's next revision through the store's current one (at most watchBatchMaxRevs
// revisions with events), as etcd sends a replay: one response, headed with the current revision. A
// watcher that keeps up thus gets one revision per receive.
//
// A watcher has no queue of its own: it remembers the next revision it must deliver and reads the
// store's history when its receiver is ready. Applying a write therefore never waits for a watcher,
// and a slow watcher costs nothing until the history moves past it (HistoryLimit revisions later, or a
// Compact); it is then cancelled with ErrCompacted, as etcd cancels a watch whose revision has been
// compacted, and the client restarts from a fresh read.
type Watcher struct {
	s        *Store
	key, end []byte
	noPut    bool
	noDelete bool
	prevKV   bool

	ch        chan Batch
	wake      chan struct{} // capacity 1: "something new happened"
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	next       atomic.Int64 // next revision to look at; advanced by the run goroutine only
	busy       atomic.Bool  // the run goroutine holds events not yet received from ch
	err        error        // why delivery ended; written before ch is closed
	compactRev int64        // the compacted revision when err is ErrCompacted
}

// Watch starts a watch on req's key or range (prefix through range_end, every key >= key with
// "\x00") from req.StartRevision inclusive, or from the next revision when it is 0. Filters NOPUT and
// NODELETE drop event types; PrevKv adds the previous key-value to events. A start at or below
// CompactRev fails with ErrCompacted (report CompactRev as compact_revision). Progress notifications
// and fragmentation are the node layer's.
func (s *Store) Watch(req *pb.WatchCreateRequest) (*Watcher, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := req.StartRevision
	if start <= 0 {
		start = s.rev + 1
	}
	if start <= s.compactRev {
		return nil, ErrCompacted
	}
	w := &Watcher{
		s:      s,
		key:    req.Key,
		end:    req.RangeEnd,
		prevKV: req.PrevKv,
		ch:     make(chan Batch),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	w.next.Store(start)
	for _, f := range req.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			w.noPut = true
		case pb.WatchCreateRequest_NODELETE:
			w.noDelete = true
		}
	}
	s.watchers[w] = struct{}{}
	go w.run()
	return w, nil
}

// Batch is one delivery of a watcher: its events of the revisions up to Rev, in order (never empty).
// The watcher has delivered everything up to Rev: it is the header revision of the response.
type Batch struct {
	Events []*mvccpb.Event
	Rev    int64
}

// watchBatchMaxRevs bounds the revisions with events in one Batch, as etcd's watchBatchMaxRevs.
const watchBatchMaxRevs = 1000

// C delivers the watcher's batches. It is closed after Close, or when the watch can no longer be
// served: Err then says why.
func (w *Watcher) C() <-chan Batch { return w.ch }

// Err returns why C was closed: nil after Close, ErrCompacted when the history moved past the
// watcher (CompactRev gives the compacted revision to report). Call it after C is closed.
func (w *Watcher) Err() error { return w.err }

// CompactRev is the compacted revision that cancelled the watcher, when Err is ErrCompacted.
func (w *Watcher) CompactRev() int64 { return w.compactRev }

// Close stops the watcher and frees it; C is closed soon after. Safe to call more than once.
func (w *Watcher) Close() {
	w.closeOnce.Do(func() { close(w.done) })
}

func (w *Watcher) run() {
	defer func() {
		w.s.mu.Lock()
		delete(w.s.watchers, w)
		w.s.mu.Unlock()
		close(w.ch)
	}()
	for {
		b, err := w.s.nextEvents(w)
		if err != nil {
			w.err = err
			return
		}
		if b.Events == nil {
			select {
			case <-w.wake:
				continue
			case <-w.done:
				return
			}
		}
		select {
		case w.ch <- b:
			w.busy.Store(false)
		case <-w.done:
			return
		}
	}
}

// Progress reports whether the watcher has delivered everything up to the current revision, and that
// revision: the node layer sends a progress notification with it only then, as etcd does for synced
// watchers. A false answer just means "not now".
func (w *Watcher) Progress() (rev int64, synced bool) {
	rev = w.s.Rev()
	// next is advanced after busy is set (nextEvents), so reading next first cannot miss a batch
	// that is on its way.
	if w.next.Load() <= rev || w.busy.Load() {
		return 0, false
	}
	return rev, true
}

// nextEvents returns the watcher's events from w.next through the current revision (or through the
// watchBatchMaxRevs-th revision that has some), and moves w.next past them (marking the watcher busy
// first, when there are events); no events when it has seen everything.
func (s *Store) nextEvents(w *Watcher) (Batch, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	next := w.next.Load()
	if next <= s.compactRev {
		w.compactRev = s.compactRev
		return Batch{}, ErrCompacted
	}
	b := Batch{Rev: s.rev}
	revs := 0
	i := sort.Search(len(s.history), func(i int) bool { return s.history[i].rev >= next })
	for ; i < len(s.history) && revs < watchBatchMaxRevs; i++ {
		if events := w.filter(s.history[i].events); len(events) > 0 {
			if b.Events == nil {
				b.Events = events // the common case, one revision: no copy
			} else {
				b.Events = append(b.Events, events...)
			}
			revs++
		}
	}
	if revs == watchBatchMaxRevs {
		b.Rev = s.history[i-1].rev
	}
	if b.Events != nil {
		w.busy.Store(true)
	}
	w.next.Store(max(next, b.Rev+1)) // a watch may start beyond the current revision
	return b, nil
}

// filter returns the events of one revision this watcher wants. The stored PrevKv is the value just
// before each event (what undoing needs); a watch's prev_kv is, as in etcd, the value before the whole
// revision, which differs when a txn wrote the key twice (put, then delete of a range with end "\x00").
func (w *Watcher) filter(events []*mvccpb.Event) []*mvccpb.Event {
	var out []*mvccpb.Event
	for i, ev := range events {
		if !inRange(ev.Kv.Key, w.key, w.end) ||
			ev.Type == mvccpb.PUT && w.noPut || ev.Type == mvccpb.DELETE && w.noDelete {
			continue
		}
		prev := ev.PrevKv
		if !w.prevKV {
			prev = nil
		} else if prev != nil && prev.ModRevision == ev.Kv.ModRevision || prev == nil {
			prev = prevRevisionKV(events[:i], ev)
		}
		if prev != ev.PrevKv {
			c := *ev
			c.PrevKv = prev
			ev = &c
		}
		out = append(out, ev)
	}
	return out
}

// prevRevisionKV returns the value ev's key had before the revision: the PrevKv of the first of the
// earlier events of the revision on that key, or ev's own.
func prevRevisionKV(earlier []*mvccpb.Event, ev *mvccpb.Event) *mvccpb.KeyValue {
	for _, e := range earlier {
		if bytes.Equal(e.Kv.Key, ev.Kv.Key) {
			return e.PrevKv
		}
	}
	return ev.PrevKv
}

// wakeWatchers tells every watcher that a new revision, a compaction or a restore happened. It never
// blocks. Called with s.mu held.
func (s *Store) wakeWatchers() {
	for w := range s.watchers {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}
