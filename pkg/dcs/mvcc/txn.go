package mvcc

import (
	"bytes"
	"cmp"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Txn applies a transaction atomically in at most one revision, as etcd: every compare (the nested
// ones too) is evaluated against the state before the txn; the branch taken is checked whole before
// anything is written, so an error (ErrLeaseNotFound, ErrKeyNotFound, ErrCompacted...) writes nothing;
// ops run in order and a range sees the writes of earlier ops. Succeeded is false when a compare
// failed (the JSON gateway then omits it, which Patroni 3.0.2 relies on).
func (s *Store) Txn(req *pb.TxnRequest) (*pb.TxnResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := checkTxn(req, MaxTxnOps); err != nil {
		return nil, err
	}
	path := s.txnPath(req, nil)
	if err := s.checkPath(req, path); err != nil {
		return nil, err
	}
	w := s.begin()
	resp, _ := s.applyTxn(w, req, path)
	s.commit(w)
	resp.Header = s.header()
	return resp, nil
}

// checkTxn validates the shape of a txn without looking at the state, as etcd: op counts (a nested
// txn may use what its parent left of the limit) and each op's own checks, recursively; then, for the
// top-level branches, keys written at most once (ErrDuplicateKey).
func checkTxn(req *pb.TxnRequest, limit int) error {
	if err := checkTxnShape(req, limit); err != nil {
		return err
	}
	if _, _, err := writtenKeys(req.Success); err != nil {
		return err
	}
	_, _, err := writtenKeys(req.Failure)
	return err
}

// CheckTxn checks what etcd checks before a txn reaches the log, without looking at the state and
// without allocating: at most MaxTxnOps compares and ops per branch (nested txns included), and
// each op's own checks. The duplicate-key rules are checked when the txn is applied.
func CheckTxn(req *pb.TxnRequest) error { return checkTxnShape(req, MaxTxnOps) }

func checkTxnShape(req *pb.TxnRequest, limit int) error {
	opc := max(len(req.Compare), len(req.Success), len(req.Failure))
	if opc > limit {
		return ErrTooManyOps
	}
	for _, c := range req.Compare {
		if len(c.Key) == 0 {
			return ErrEmptyKey
		}
	}
	for _, ops := range [][]*pb.RequestOp{req.Success, req.Failure} {
		for _, op := range ops {
			var err error
			switch r := op.Request.(type) {
			case *pb.RequestOp_RequestRange:
				err = CheckRange(r.RequestRange)
			case *pb.RequestOp_RequestPut:
				err = CheckPut(r.RequestPut)
			case *pb.RequestOp_RequestDeleteRange:
				err = CheckDeleteRange(r.RequestDeleteRange)
			case *pb.RequestOp_RequestTxn:
				err = checkTxnShape(r.RequestTxn, limit-opc)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// span is a key range with etcd's conventions (see Store.span).
type span struct{ key, end []byte }

// has tells whether a deleted range covers key, as etcd's duplicate check sees it: there, a range end
// "\x00" is taken literally, so such a delete covers nothing.
func (d span) has(key string) bool {
	if len(d.end) == 0 {
		return key == string(d.key)
	}
	return key >= string(d.key) && key < string(d.end)
}

func covered(dels []span, key string) bool {
	for _, d := range dels {
		if d.has(key) {
			return true
		}
	}
	return false
}

// writtenKeys returns the keys a branch may put and the ranges it may delete, and ErrDuplicateKey when
// a key is put twice or put inside a deleted range, with etcd's rules (checkIntervals): the two
// branches of a nested txn may put the same key; a nested txn's puts are checked against the deletes
// of this level and of the nested txns before it; this level's puts against all of them.
func writtenKeys(ops []*pb.RequestOp) (puts map[string]bool, dels []span, err error) {
	for _, op := range ops {
		if r, ok := op.Request.(*pb.RequestOp_RequestDeleteRange); ok {
			dels = append(dels, span{r.RequestDeleteRange.Key, r.RequestDeleteRange.RangeEnd})
		}
	}
	puts = map[string]bool{}
	for _, op := range ops {
		r, ok := op.Request.(*pb.RequestOp_RequestTxn)
		if !ok {
			continue
		}
		putsThen, delsThen, err := writtenKeys(r.RequestTxn.Success)
		if err != nil {
			return nil, nil, err
		}
		putsElse, delsElse, err := writtenKeys(r.RequestTxn.Failure)
		if err != nil {
			return nil, nil, err
		}
		for k := range putsThen {
			if puts[k] || covered(dels, k) {
				return nil, nil, ErrDuplicateKey
			}
			puts[k] = true
		}
		for k := range putsElse {
			if puts[k] && !putsThen[k] || covered(dels, k) {
				return nil, nil, ErrDuplicateKey
			}
			puts[k] = true
		}
		dels = append(append(dels, delsThen...), delsElse...)
	}
	for _, op := range ops {
		if r, ok := op.Request.(*pb.RequestOp_RequestPut); ok {
			k := string(r.RequestPut.Key)
			if puts[k] || covered(dels, k) {
				return nil, nil, ErrDuplicateKey
			}
			puts[k] = true
		}
	}
	return puts, dels, nil
}

// txnPath evaluates the compares of req and of every nested txn on the branch taken, against the
// current (pre-txn) state, and appends the outcomes in execution order.
func (s *Store) txnPath(req *pb.TxnRequest, path []bool) []bool {
	ok := true
	for _, c := range req.Compare {
		if !s.compare(c) {
			ok = false
			break
		}
	}
	path = append(path, ok)
	for _, op := range branch(req, ok) {
		if r, isTxn := op.Request.(*pb.RequestOp_RequestTxn); isTxn {
			path = s.txnPath(r.RequestTxn, path)
		}
	}
	return path
}

func branch(req *pb.TxnRequest, ok bool) []*pb.RequestOp {
	if ok {
		return req.Success
	}
	return req.Failure
}

// compare evaluates one compare as etcd: over every key of its range; a range without keys compares
// as a key with zero fields, except that a VALUE compare on missing keys is always false.
func (s *Store) compare(c *pb.Compare) bool {
	kvs := s.span(c.Key, c.RangeEnd)
	if len(kvs) == 0 {
		if c.Target == pb.Compare_VALUE {
			return false
		}
		return compareKV(c, &mvccpb.KeyValue{})
	}
	for _, kv := range kvs {
		if !compareKV(c, kv) {
			return false
		}
	}
	return true
}

func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var r int
	switch c.Target {
	case pb.Compare_VALUE:
		r = bytes.Compare(kv.Value, c.GetValue())
	case pb.Compare_CREATE:
		r = cmp.Compare(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		r = cmp.Compare(kv.ModRevision, c.GetModRevision())
	case pb.Compare_VERSION:
		r = cmp.Compare(kv.Version, c.GetVersion())
	case pb.Compare_LEASE:
		r = cmp.Compare(kv.Lease, c.GetLease())
	default:
		return false
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return r == 0
	case pb.Compare_NOT_EQUAL:
		return r != 0
	case pb.Compare_GREATER:
		return r > 0
	case pb.Compare_LESS:
		return r < 0
	}
	return false
}

// checkPath checks every op of the branches path selects against the pre-txn state, so that applying
// them cannot fail half way.
func (s *Store) checkPath(req *pb.TxnRequest, path []bool) error {
	_, err := s.walkPath(req, path, func(op *pb.RequestOp) error {
		switch r := op.Request.(type) {
		case *pb.RequestOp_RequestPut:
			return s.checkPut(r.RequestPut, true)
		case *pb.RequestOp_RequestRange:
			return s.checkRange(r.RequestRange)
		}
		return nil
	})
	return err
}

// walkPath calls f for each non-txn op on the chosen branches, in order, and returns the unused rest
// of path.
func (s *Store) walkPath(req *pb.TxnRequest, path []bool, f func(*pb.RequestOp) error) ([]bool, error) {
	ok := path[0]
	path = path[1:]
	for _, op := range branch(req, ok) {
		if r, isTxn := op.Request.(*pb.RequestOp_RequestTxn); isTxn {
			var err error
			if path, err = s.walkPath(r.RequestTxn, path, f); err != nil {
				return nil, err
			}
			continue
		}
		if err := f(op); err != nil {
			return nil, err
		}
	}
	return path, nil
}

// applyTxn runs a checked txn along path and returns its response and the unused rest of path.
// Headers are etcd's: each op's carries the revision as that op left it (the txn's new revision once
// something was written, the old one before), and a nested txn's header is empty.
func (s *Store) applyTxn(w *write, req *pb.TxnRequest, path []bool) (*pb.TxnResponse, []bool) {
	ok := path[0]
	path = path[1:]
	resp := &pb.TxnResponse{Succeeded: ok}
	for _, op := range branch(req, ok) {
		var out pb.ResponseOp
		switch r := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			rr := s.applyRange(r.RequestRange, w.events)
			rr.Header = w.header(s)
			out.Response = &pb.ResponseOp_ResponseRange{ResponseRange: rr}
		case *pb.RequestOp_RequestPut:
			pr := s.applyPut(w, r.RequestPut)
			pr.Header = w.header(s)
			out.Response = &pb.ResponseOp_ResponsePut{ResponsePut: pr}
		case *pb.RequestOp_RequestDeleteRange:
			dr := s.applyDelete(w, r.RequestDeleteRange)
			dr.Header = w.header(s)
			out.Response = &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: dr}
		case *pb.RequestOp_RequestTxn:
			var nested *pb.TxnResponse
			nested, path = s.applyTxn(w, r.RequestTxn, path)
			nested.Header = &pb.ResponseHeader{}
			out.Response = &pb.ResponseOp_ResponseTxn{ResponseTxn: nested}
		default:
			continue // an empty op: etcd answers nothing for it either
		}
		resp.Responses = append(resp.Responses, &out)
	}
	return resp, path
}
