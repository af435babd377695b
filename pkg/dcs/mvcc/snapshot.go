package mvcc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// snapshotVersion is the first byte of every snapshot. Restore refuses other versions.
const snapshotVersion = 1

// maxSnapshotItem bounds one encoded key-value or event (a request is at most MaxRequestBytes).
const maxSnapshotItem = 4 * MaxRequestBytes

// Snapshot is a point-in-time copy of the store for a Raft snapshot.
type Snapshot interface {
	// WriteTo writes the snapshot's stable binary encoding (see DESIGN.md); it may run long after
	// Store.Snapshot returned, concurrently with applies.
	WriteTo(w io.Writer) (int64, error)
	// WriteBackend writes it as an etcd 3.4 backend database (backend.go).
	WriteBackend(path string) error
}

type snapshot struct {
	rev, compactRev int64
	kvs             []*mvccpb.KeyValue
	leases          []leaseState
	history         []revision
}

type leaseState struct {
	id, ttl     int64
	remainingMs int64 // time left before the local deadline when the snapshot was taken
}

// Snapshot copies the store under the lock. The copy is cheap: key-values and events are immutable
// and shared, only the slices are copied. It includes the history, so that a member restored from it
// has the same CompactRev, the same historic reads and the same watch replay as the others.
func (s *Store) Snapshot() (Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	now := s.opts.Now()
	snap := &snapshot{
		rev:        s.rev,
		compactRev: s.compactRev,
		kvs:        slices.Clone(s.kvs),
		history:    slices.Clone(s.history),
	}
	for _, id := range s.leaseIDs() {
		l := s.leases[id]
		left := max(l.deadline.Sub(now), 0)
		snap.leases = append(snap.leases, leaseState{id: id, ttl: l.ttl, remainingMs: (left + time.Millisecond - 1).Milliseconds()})
	}
	return snap, nil
}

// WriteTo encodes: version byte; rev, compactRev; key-values; leases (ID, TTL, remaining ms); the
// history (revision, events). Counts and integers are varints, messages are length-prefixed
// protobuf (etcd's mvccpb.KeyValue and mvccpb.Event).
func (snap *snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriter(cw)
	e := encoder{w: bw}
	e.raw([]byte{snapshotVersion})
	e.int(snap.rev)
	e.int(snap.compactRev)
	e.int(int64(len(snap.kvs)))
	for _, kv := range snap.kvs {
		e.msg(kv)
	}
	e.int(int64(len(snap.leases)))
	for _, l := range snap.leases {
		e.int(l.id)
		e.int(l.ttl)
		e.int(l.remainingMs)
	}
	e.int(int64(len(snap.history)))
	for _, h := range snap.history {
		e.int(h.rev)
		e.int(int64(len(h.events)))
		for _, ev := range h.events {
			e.msg(ev)
		}
	}
	if e.err == nil {
		e.err = bw.Flush()
	}
	return cw.n, e.err
}

// Restore replaces the whole state with a snapshot written by WriteTo. Nothing changes if it fails.
// Lease deadlines become now + the remaining time recorded in the snapshot: never earlier than on the
// member that took it. Watchers carry on: the restored history serves them if it still holds their
// next revision, otherwise they end with ErrCompacted.
func (s *Store) Restore(r io.Reader) error {
	d := decoder{r: bufio.NewReader(r)}
	if v := d.byte(); d.err == nil && v > snapshotVersion {
		return fmt.Errorf("mvcc: snapshot format %d is newer than this member reads (%d): upgrade pgherd on this member", v, snapshotVersion)
	} else if d.err == nil && v != snapshotVersion {
		return fmt.Errorf("mvcc: snapshot format %d not supported (want %d)", v, snapshotVersion)
	}
	rev, compactRev := d.int(), d.int()
	var kvs []*mvccpb.KeyValue
	for n := d.count(); d.err == nil && len(kvs) < n; {
		kv := &mvccpb.KeyValue{}
		d.msg(kv)
		kvs = append(kvs, kv)
	}
	leases := map[int64]*lease{}
	now := s.opts.Now()
	for n := d.count(); d.err == nil && len(leases) < n; {
		l := &lease{id: d.int(), ttl: d.int(), keys: map[string]struct{}{}}
		// Bounded by the largest TTL, so that a crafted remaining time cannot overflow the deadline.
		l.deadline = now.Add(time.Duration(min(max(d.int(), 0), MaxLeaseTTL*1000)) * time.Millisecond)
		leases[l.id] = l
	}
	var history []revision
	for n := d.count(); d.err == nil && len(history) < n; {
		h := revision{rev: d.int()}
		for m := d.count(); d.err == nil && len(h.events) < m; {
			ev := &mvccpb.Event{}
			d.msg(ev)
			h.events = append(h.events, ev)
		}
		history = append(history, h)
	}
	if d.err != nil {
		return fmt.Errorf("mvcc: read snapshot: %w", d.err)
	}
	if err := checkSnapshot(rev, compactRev, kvs, leases, history); err != nil {
		return fmt.Errorf("mvcc: bad snapshot: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev, s.compactRev, s.kvs, s.leases, s.history = rev, compactRev, kvs, leases, history
	s.liveBytes, s.histBytes = 0, 0
	for _, kv := range kvs {
		s.liveBytes += kvCost(kv)
	}
	for _, h := range history {
		s.histBytes += revisionCost(h)
	}
	s.trimHistory()
	s.wakeWatchers()
	return nil
}

// checkSnapshot checks the invariants the store relies on and attaches keys to their leases.
func checkSnapshot(rev, compactRev int64, kvs []*mvccpb.KeyValue, leases map[int64]*lease, history []revision) error {
	if rev < 1 || compactRev < 0 || compactRev > rev {
		return fmt.Errorf("revision %d, compacted %d", rev, compactRev)
	}
	for i, kv := range kvs {
		if i > 0 && bytes.Compare(kvs[i-1].Key, kv.Key) >= 0 {
			return errors.New("keys out of order")
		}
		if kv.Lease != 0 {
			l := leases[kv.Lease]
			if l == nil {
				return fmt.Errorf("key %q on unknown lease %d", kv.Key, kv.Lease)
			}
			l.keys[string(kv.Key)] = struct{}{}
		}
	}
	last := compactRev
	for _, h := range history {
		if h.rev <= last || h.rev > rev || len(h.events) == 0 {
			return fmt.Errorf("history revision %d out of order or empty", h.rev)
		}
		for _, ev := range h.events {
			if ev.Kv == nil || ev.Type == mvccpb.DELETE && ev.PrevKv == nil {
				return fmt.Errorf("incomplete event at revision %d", h.rev)
			}
		}
		last = h.rev
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type marshaler interface{ Marshal() ([]byte, error) }

// encoder writes varints and length-prefixed messages, keeping the first error.
type encoder struct {
	w   *bufio.Writer
	buf []byte
	err error
}

func (e *encoder) raw(p []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(p)
	}
}

func (e *encoder) int(v int64) { e.raw(binary.AppendVarint(e.buf[:0], v)) }

func (e *encoder) msg(m marshaler) {
	b, err := m.Marshal()
	if err != nil && e.err == nil {
		e.err = err
	}
	e.int(int64(len(b)))
	e.raw(b)
}

type unmarshaler interface{ Unmarshal([]byte) error }

// decoder reads what encoder wrote, keeping the first error; after an error it returns zeros.
type decoder struct {
	r   *bufio.Reader
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	b, err := d.r.ReadByte()
	d.setErr(err)
	return b
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadVarint(d.r)
	d.setErr(err)
	return v
}

// count reads a length, refusing negative or absurd ones before anything is allocated for them.
func (d *decoder) count() int {
	n := d.int()
	if n < 0 || n > maxSnapshotItem {
		d.setErr(fmt.Errorf("bad length %d", n))
		return 0
	}
	return int(n)
}

func (d *decoder) msg(m unmarshaler) {
	n := d.count()
	if d.err != nil {
		return
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(d.r, b); err != nil {
		d.setErr(err)
		return
	}
	d.setErr(m.Unmarshal(b))
}

func (d *decoder) setErr(err error) {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if d.err == nil && err != nil {
		d.err = err
	}
}
