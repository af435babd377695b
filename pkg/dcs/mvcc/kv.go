package mvcc

import (
	"bytes"
	"cmp"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Put writes one key in a new revision. With Lease set the key is attached to that lease (which must
// exist: ErrLeaseNotFound, nothing written); without it the key is detached from any lease. IgnoreValue
// and IgnoreLease keep the current value or lease and need the key to exist (ErrKeyNotFound). A put
// that would change a held key (Options.Held) under a live lease is refused (ErrHeld).
func (s *Store) Put(req *pb.PutRequest) (*pb.PutResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkPut(req, false); err != nil {
		return nil, err
	}
	w := s.begin()
	resp := s.applyPut(w, req)
	s.commit(w)
	resp.Header = s.header()
	return resp, nil
}

// checkPut refuses a put that cannot be applied. etcd checks the lease before the key for a put and
// after it inside a txn; so does this, to give the same error when both are wrong.
func (s *Store) checkPut(req *pb.PutRequest, inTxn bool) error {
	if err := CheckPut(req); err != nil {
		return err
	}
	missingKey := (req.IgnoreValue || req.IgnoreLease) && s.get(req.Key) == nil
	missingLease := req.Lease != 0 && s.leases[req.Lease] == nil
	switch {
	case missingKey && inTxn:
		return ErrKeyNotFound
	case missingLease:
		return ErrLeaseNotFound
	case missingKey:
		return ErrKeyNotFound
	case s.rewritesHeld(req):
		return ErrHeld
	}
	return nil
}

// rewritesHeld reports whether req would change the value of a held key (Options.Held) that is
// attached to a live lease. Inside a txn it is checked against the state before the txn.
func (s *Store) rewritesHeld(req *pb.PutRequest) bool {
	if s.opts.Held == nil || req.IgnoreValue {
		return false
	}
	cur := s.get(req.Key)
	return cur != nil && cur.Lease != 0 && s.leases[cur.Lease] != nil && !bytes.Equal(cur.Value, req.Value) && s.opts.Held(req.Key)
}

// CheckPut checks what etcd checks before a put reaches the log, without looking at the state. The
// node calls it before proposing and on what a peer forwards; Put calls it again when applying.
func CheckPut(req *pb.PutRequest) error {
	switch {
	case len(req.GetKey()) == 0:
		return ErrEmptyKey
	case req.IgnoreValue && len(req.Value) != 0:
		return ErrValueProvided
	case req.IgnoreLease && req.Lease != 0:
		return ErrLeaseProvided
	}
	return nil
}

func (s *Store) applyPut(w *write, req *pb.PutRequest) *pb.PutResponse {
	prev := s.put(w, req.Key, req.Value, req.Lease, req.IgnoreValue, req.IgnoreLease)
	resp := &pb.PutResponse{}
	if req.PrevKv {
		resp.PrevKv = prev
	}
	return resp
}

// DeleteRange deletes the keys in [key, range_end) (one key without range_end, every key >= key with
// range_end "\x00") in one revision. Deleting nothing leaves the revision unchanged.
func (s *Store) DeleteRange(req *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := CheckDeleteRange(req); err != nil {
		return nil, err
	}
	w := s.begin()
	resp := s.applyDelete(w, req)
	s.commit(w)
	resp.Header = s.header()
	return resp, nil
}

// CheckDeleteRange checks what etcd checks before a delete reaches the log.
func CheckDeleteRange(req *pb.DeleteRangeRequest) error {
	if len(req.GetKey()) == 0 {
		return ErrEmptyKey
	}
	return nil
}

func (s *Store) applyDelete(w *write, req *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	gone := s.deleteSpan(w, req.Key, req.RangeEnd)
	resp := &pb.DeleteRangeResponse{Deleted: int64(len(gone))}
	if req.PrevKv {
		resp.PrevKvs = gone
	}
	return resp
}

// Range reads keys as etcd does: key alone, [key, range_end), or every key >= key with range_end
// "\x00"; at the current revision or at an older one still in the history (ErrCompacted below
// CompactRev, ErrFutureRev above Rev). Count is the number of keys in the range before limit and
// min/max filters; More tells that limit cut the result. Header.Revision is the current revision even
// for a historic read, as etcd.
func (s *Store) Range(req *pb.RangeRequest) (*pb.RangeResponse, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.checkRange(req); err != nil {
		return nil, err
	}
	resp := s.applyRange(req, nil)
	resp.Header = s.header()
	return resp, nil
}

func (s *Store) checkRange(req *pb.RangeRequest) error {
	if err := CheckRange(req); err != nil {
		return err
	}
	switch {
	case req.Revision > s.rev:
		return ErrFutureRev
	case req.Revision > 0 && req.Revision < s.compactRev:
		return ErrCompacted
	}
	return nil
}

// CheckRange checks what etcd checks before a range is served, without looking at the state.
func CheckRange(req *pb.RangeRequest) error {
	if len(req.GetKey()) == 0 {
		return ErrEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(req.SortOrder)]; !ok {
		return ErrInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(req.SortTarget)]; !ok {
		return ErrInvalidSortOption
	}
	return nil
}

// applyRange reads a checked request. pending are the events of a txn being applied (not yet in the
// history): a historic read undoes them too.
func (s *Store) applyRange(req *pb.RangeRequest, pending []*mvccpb.Event) *pb.RangeResponse {
	var kvs []*mvccpb.KeyValue
	if req.Revision > 0 && (req.Revision < s.rev || len(pending) > 0) {
		kvs = s.spanAt(req.Key, req.RangeEnd, req.Revision, pending)
	} else {
		kvs = s.span(req.Key, req.RangeEnd)
	}
	resp := &pb.RangeResponse{Count: int64(len(kvs))}
	if req.CountOnly {
		return resp
	}
	filtered := req.MinModRevision != 0 || req.MaxModRevision != 0 || req.MinCreateRevision != 0 || req.MaxCreateRevision != 0
	if req.Limit > 0 && req.SortOrder == pb.RangeRequest_NONE && !filtered && int64(len(kvs))-1 > req.Limit {
		// etcd reads only limit+1 keys (in key order) when no order is asked, even if a sort target
		// is: the result is those keys sorted by the target. (Written so that limit+1 cannot overflow:
		// the limit is the client's.)
		kvs = kvs[:req.Limit+1]
	}
	kvs = slices.DeleteFunc(kvs, func(kv *mvccpb.KeyValue) bool {
		return (req.MinModRevision != 0 && kv.ModRevision < req.MinModRevision) ||
			(req.MaxModRevision != 0 && kv.ModRevision > req.MaxModRevision) ||
			(req.MinCreateRevision != 0 && kv.CreateRevision < req.MinCreateRevision) ||
			(req.MaxCreateRevision != 0 && kv.CreateRevision > req.MaxCreateRevision)
	})
	sortKVs(kvs, req.SortTarget, req.SortOrder)
	if req.Limit > 0 && int64(len(kvs)) > req.Limit {
		kvs = kvs[:req.Limit]
		resp.More = true
	}
	if req.KeysOnly {
		for i, kv := range kvs {
			c := *kv
			c.Value = nil
			kvs[i] = &c
		}
	}
	if len(kvs) > 0 {
		resp.Kvs = kvs
	}
	return resp
}

// sortKVs sorts key-ordered kvs as etcd: a target other than KEY without an order means ascending.
func sortKVs(kvs []*mvccpb.KeyValue, target pb.RangeRequest_SortTarget, order pb.RangeRequest_SortOrder) {
	if order == pb.RangeRequest_NONE && target == pb.RangeRequest_KEY ||
		order == pb.RangeRequest_ASCEND && target == pb.RangeRequest_KEY {
		return // already in ascending key order
	}
	by := func(a, b *mvccpb.KeyValue) int {
		switch target {
		case pb.RangeRequest_VERSION:
			return cmp.Compare(a.Version, b.Version)
		case pb.RangeRequest_CREATE:
			return cmp.Compare(a.CreateRevision, b.CreateRevision)
		case pb.RangeRequest_MOD:
			return cmp.Compare(a.ModRevision, b.ModRevision)
		case pb.RangeRequest_VALUE:
			return bytes.Compare(a.Value, b.Value)
		}
		return bytes.Compare(a.Key, b.Key)
	}
	if order == pb.RangeRequest_DESCEND {
		slices.SortStableFunc(kvs, func(a, b *mvccpb.KeyValue) int { return by(b, a) })
		return
	}
	slices.SortStableFunc(kvs, by)
}

// spanAt returns the key-values of the range as they were at revision rev (compactRev <= rev <= s.rev),
// by undoing, newest first, the pending events and the history after rev.
func (s *Store) spanAt(key, end []byte, rev int64, pending []*mvccpb.Event) []*mvccpb.KeyValue {
	state := map[string]*mvccpb.KeyValue{}
	for _, kv := range s.span(key, end) {
		state[string(kv.Key)] = kv
	}
	undo := func(events []*mvccpb.Event) {
		for i := len(events) - 1; i >= 0; i-- {
			ev := events[i]
			if !inRange(ev.Kv.Key, key, end) {
				continue
			}
			if ev.PrevKv == nil {
				delete(state, string(ev.Kv.Key))
			} else {
				state[string(ev.Kv.Key)] = ev.PrevKv
			}
		}
	}
	undo(pending)
	for i := len(s.history) - 1; i >= 0 && s.history[i].rev > rev; i-- {
		undo(s.history[i].events)
	}
	kvs := make([]*mvccpb.KeyValue, 0, len(state))
	for _, kv := range state {
		kvs = append(kvs, kv)
	}
	slices.SortFunc(kvs, func(a, b *mvccpb.KeyValue) int { return bytes.Compare(a.Key, b.Key) })
	return kvs
}
