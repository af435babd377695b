package mvcc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/protowire"
)

// etcd's backend database, as etcd 3.4 writes it and as `etcdctl snapshot
// status|restore` read it: a bbolt file whose `key` bucket maps revision
// keys (8-byte big-endian main revision, '_', 8-byte sub revision, and a
// trailing 't' for a deletion) to an mvccpb.KeyValue (only the key for a
// deletion), whose `meta` bucket holds the revision compacted up to
// (`finishedCompactRev`, a revision key), and whose `lease` bucket maps an
// 8-byte big-endian lease ID to a leasepb.Lease {ID, TTL, RemainingTTL}.
// etcd creates the other buckets it needs (members, cluster, alarm, auth)
// when it opens a restored file; the empty ones written here are those
// `etcdctl snapshot restore` rewrites.
var (
	bucketKey     = []byte("key")
	bucketMeta    = []byte("meta")
	bucketLease   = []byte("lease")
	metaCompacted = []byte("finishedCompactRev")
	backendOthers = [][]byte{[]byte("members"), []byte("members_removed")}
)

// revKeyLen is the length of a revision key without the deletion mark.
const revKeyLen = 17

func revKey(main, sub int64, deleted bool) []byte {
	k := make([]byte, revKeyLen, revKeyLen+1)
	binary.BigEndian.PutUint64(k, uint64(main))
	k[8] = '_'
	binary.BigEndian.PutUint64(k[9:], uint64(sub))
	if deleted {
		k = append(k, 't')
	}
	return k
}

// backendEntry is one row of the key bucket.
type backendEntry struct {
	main, sub int64
	deleted   bool
	kv        *mvccpb.KeyValue
}

// WriteBackend writes the snapshot as an etcd 3.4 backend database at
// path (created 0600, which must not exist): every live key at its
// revision with its create revision and version, the history's events at
// theirs, the compacted revision, and the leases with their remaining
// time. etcd restored from it serves the same keys at the same revisions;
// reads and watches below the compacted revision are refused there, as
// here.
func (snap *snapshot) WriteBackend(path string) error {
	rows := snap.backendRows()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("write etcd backend: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		kb, err := tx.CreateBucket(bucketKey)
		if err != nil {
			return err
		}
		kb.FillPercent = 1 // appended in order, never split again
		for _, r := range rows {
			v, err := r.kv.Marshal()
			if err != nil {
				return err
			}
			if err := kb.Put(revKey(r.main, r.sub, r.deleted), v); err != nil {
				return err
			}
		}
		mb, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if snap.compactRev > 0 {
			if err := mb.Put(metaCompacted, revKey(snap.compactRev, 0, false)); err != nil {
				return err
			}
		}
		lb, err := tx.CreateBucket(bucketLease)
		if err != nil {
			return err
		}
		for _, l := range snap.leases {
			id := binary.BigEndian.AppendUint64(nil, uint64(l.id))
			if err := lb.Put(id, encodeLease(l)); err != nil {
				return err
			}
		}
		for _, b := range backendOthers {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write etcd backend: %w", err)
	}
	return nil
}

// backendRows lists the key bucket in revision order: each key's value
// as of the compacted revision (what etcd keeps when it compacts), then
// the history's events. Keys last written in one revision before the
// compaction get sub revisions in key order: etcd's order within a
// transaction is not known any more, and nothing reads it.
func (snap *snapshot) backendRows() []backendEntry {
	var rows []backendEntry
	touched := map[string]bool{} // keys with an event in the history
	var base []*mvccpb.KeyValue  // values as of the compacted revision
	for _, h := range snap.history {
		for i, ev := range h.events {
			k := string(ev.Kv.Key)
			if !touched[k] && ev.PrevKv != nil && ev.PrevKv.ModRevision <= snap.compactRev {
				base = append(base, ev.PrevKv)
			}
			touched[k] = true
			if ev.Type == mvccpb.DELETE {
				rows = append(rows, backendEntry{h.rev, int64(i), true, &mvccpb.KeyValue{Key: ev.Kv.Key}})
			} else {
				rows = append(rows, backendEntry{h.rev, int64(i), false, ev.Kv})
			}
		}
	}
	for _, kv := range snap.kvs {
		if !touched[string(kv.Key)] {
			base = append(base, kv)
		}
	}
	slices.SortFunc(base, func(a, b *mvccpb.KeyValue) int {
		if a.ModRevision != b.ModRevision {
			return int(min(max(a.ModRevision-b.ModRevision, -1), 1))
		}
		return bytes.Compare(a.Key, b.Key)
	})
	subs := map[int64]int64{}
	for _, kv := range base {
		rows = append(rows, backendEntry{kv.ModRevision, subs[kv.ModRevision], false, kv})
		subs[kv.ModRevision]++
	}
	slices.SortStableFunc(rows, func(a, b backendEntry) int {
		if a.main != b.main {
			return int(min(max(a.main-b.main, -1), 1))
		}
		return int(min(max(a.sub-b.sub, -1), 1))
	})
	return rows
}

// encodeLease is leasepb.Lease's encoding: ID (1), TTL (2), RemainingTTL
// (3), varints, zero fields omitted.
func encodeLease(l leaseState) []byte {
	var b []byte
	for i, v := range []int64{l.id, l.ttl, (l.remainingMs + 999) / 1000} {
		if v != 0 {
			b = protowire.AppendTag(b, protowire.Number(i+1), protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(v))
		}
	}
	return b
}

// decodeLease reads what encodeLease (or etcd) wrote.
func decodeLease(b []byte) (leaseState, error) {
	var f [4]int64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.VarintType {
			return leaseState{}, errors.New("bad lease record")
		}
		b = b[n:]
		v, m := protowire.ConsumeVarint(b)
		if m < 0 {
			return leaseState{}, errors.New("bad lease record")
		}
		b = b[m:]
		if num >= 1 && num <= 3 {
			f[num] = int64(v)
		}
	}
	l := leaseState{id: f[1], ttl: f[2], remainingMs: f[3] * 1000}
	if l.remainingMs <= 0 || l.remainingMs > l.ttl*1000 {
		l.remainingMs = l.ttl * 1000
	}
	return l, nil
}

// ErrNotBackend is returned for a file that is not an etcd backend database.
var ErrNotBackend = errors.New("not an etcd snapshot (no key bucket)")

// ReadBackend reads an etcd backend database (written by WriteBackend, by
// etcd's Maintenance.Snapshot, or an etcd member's member/snap/db) opened
// read-only at path, and returns it as a snapshot of this store: the same
// keys at the same revisions, the history after the compacted revision,
// the leases with their remaining time (their full TTL when none is
// recorded). The result passes Restore's checks or an error says why.
func ReadBackend(path string) (Snapshot, error) {
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("read etcd backend: %w", err)
	}
	defer db.Close()
	snap := &snapshot{}
	err = db.View(func(tx *bolt.Tx) error {
		kb := tx.Bucket(bucketKey)
		if kb == nil {
			return ErrNotBackend
		}
		if mb := tx.Bucket(bucketMeta); mb != nil {
			if v := mb.Get(metaCompacted); len(v) == revKeyLen {
				snap.compactRev = int64(binary.BigEndian.Uint64(v))
			}
		}
		if err := snap.replay(kb); err != nil {
			return err
		}
		if lb := tx.Bucket(bucketLease); lb != nil {
			return lb.ForEach(func(_, v []byte) error {
				l, err := decodeLease(v)
				snap.leases = append(snap.leases, l)
				return err
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read etcd backend: %w", err)
	}
	slices.SortFunc(snap.leases, func(a, b leaseState) int { return int(min(max(a.id-b.id, -1), 1)) })
	return snap, snap.check()
}

// replay rebuilds the live keys and the history from the key bucket.
func (snap *snapshot) replay(kb *bolt.Bucket) error {
	live := map[string]*mvccpb.KeyValue{}
	snap.rev = max(snap.compactRev, 1)
	err := kb.ForEach(func(k, v []byte) error {
		if len(k) < revKeyLen || len(k) > revKeyLen+1 || k[8] != '_' {
			return fmt.Errorf("bad revision key %x", k)
		}
		kv := &mvccpb.KeyValue{}
		if err := kv.Unmarshal(v); err != nil {
			return fmt.Errorf("revision %x: %w", k, err)
		}
		main := int64(binary.BigEndian.Uint64(k))
		snap.rev = max(snap.rev, main)
		prev := live[string(kv.Key)]
		ev := &mvccpb.Event{Kv: kv, PrevKv: prev}
		if len(k) > revKeyLen {
			if prev == nil {
				return nil // the deletion of a key compacted away
			}
			delete(live, string(kv.Key))
			ev = &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: kv.Key, ModRevision: main}, PrevKv: prev}
		} else {
			live[string(kv.Key)] = kv
		}
		if main <= snap.compactRev {
			return nil
		}
		if n := len(snap.history); n == 0 || snap.history[n-1].rev != main {
			snap.history = append(snap.history, revision{rev: main})
		}
		h := &snap.history[len(snap.history)-1]
		h.events = append(h.events, ev)
		return nil
	})
	for _, kv := range live {
		snap.kvs = append(snap.kvs, kv)
	}
	slices.SortFunc(snap.kvs, func(a, b *mvccpb.KeyValue) int { return bytes.Compare(a.Key, b.Key) })
	return err
}

// check applies Restore's checks to a snapshot read from elsewhere.
func (snap *snapshot) check() error {
	leases := map[int64]*lease{}
	for _, l := range snap.leases {
		leases[l.id] = &lease{id: l.id, ttl: l.ttl, keys: map[string]struct{}{}}
	}
	if err := checkSnapshot(snap.rev, snap.compactRev, snap.kvs, leases, snap.history); err != nil {
		return fmt.Errorf("read etcd backend: %w", err)
	}
	return nil
}
