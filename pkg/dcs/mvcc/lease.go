package mvcc

import (
	"bytes"
	"math"
	"slices"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// lease is a granted lease. ttl and keys are replicated state; deadline is local to this member.
type lease struct {
	id       int64
	ttl      int64 // granted TTL in seconds
	deadline time.Time
	keys     map[string]struct{}
}

func (s *Store) attach(id int64, key []byte) {
	if l := s.leases[id]; l != nil {
		l.keys[string(key)] = struct{}{}
	}
}

func (s *Store) detach(id int64, key []byte) {
	if l := s.leases[id]; l != nil {
		delete(l.keys, string(key))
	}
}

func (s *Store) deadline(ttl int64) time.Time {
	return s.opts.Now().Add(time.Duration(ttl) * time.Second)
}

// LeaseGrant creates the lease req.ID (chosen by the proposer, non-zero) with req.TTL seconds. Its
// deadline on this member is now + TTL. A TTL below 1 is raised to 1; the node layer applies any larger
// minimum before proposing.
func (s *Store) LeaseGrant(req *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case req.ID == 0:
		return nil, ErrLeaseIDZero
	case req.TTL > MaxLeaseTTL:
		return nil, ErrLeaseTTLTooLarge
	case s.leases[req.ID] != nil:
		return nil, ErrLeaseExists
	}
	ttl := max(req.TTL, 1)
	s.leases[req.ID] = &lease{id: req.ID, ttl: ttl, deadline: s.deadline(ttl), keys: map[string]struct{}{}}
	return &pb.LeaseGrantResponse{Header: s.header(), ID: req.ID, TTL: ttl}, nil
}

// LeaseRevoke deletes the lease and, in one revision, every key attached to it, emitting one DELETE
// event per key in key order. This is the only way a lease ends: the leader proposes revokes for the
// leases Expired reports.
func (s *Store) LeaseRevoke(id int64) (*pb.LeaseRevokeResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[id]
	if l == nil {
		return nil, ErrLeaseNotFound
	}
	keys := make([][]byte, 0, len(l.keys))
	for k := range l.keys {
		keys = append(keys, []byte(k))
	}
	slices.SortFunc(keys, bytes.Compare)
	w := s.begin()
	for _, k := range keys {
		s.deleteSpan(w, k, nil)
	}
	delete(s.leases, id)
	s.commit(w)
	return &pb.LeaseRevokeResponse{Header: s.header()}, nil
}

// LeaseRefresh is the replicated keepalive: when applied, it sets the lease's deadline on this member
// to now + ttl on the local monotonic clock (ttl <= 0, or above the granted TTL, means the granted
// TTL: a refresh can never make a lease outlive what was granted). Every member thus holds
// a deadline no earlier than the leader's, so a new leader expires a dead holder's lease just after
// the old leader would have. Unknown lease: ErrLeaseNotFound (the gateway answers that without TTL).
func (s *Store) LeaseRefresh(id int64, ttl int64) (*pb.LeaseKeepAliveResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[id]
	if l == nil {
		return nil, ErrLeaseNotFound
	}
	if ttl <= 0 || ttl > l.ttl {
		ttl = l.ttl
	}
	l.deadline = s.deadline(ttl)
	return &pb.LeaseKeepAliveResponse{Header: s.header(), ID: id, TTL: l.ttl}, nil
}

// LeaseTimeToLive reports the remaining seconds before the local deadline (rounded down, as etcd), the
// granted TTL and, on request, the attached keys in key order. An unknown lease gives TTL -1 and no
// error, as etcd.
func (s *Store) LeaseTimeToLive(req *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	resp := &pb.LeaseTimeToLiveResponse{Header: s.header(), ID: req.ID, TTL: -1}
	l := s.leases[req.ID]
	if l == nil {
		return resp, nil
	}
	resp.GrantedTTL = l.ttl
	resp.TTL = max(int64(math.Floor(l.deadline.Sub(s.opts.Now()).Seconds())), 0)
	if req.Keys {
		for k := range l.keys {
			resp.Keys = append(resp.Keys, []byte(k))
		}
		slices.SortFunc(resp.Keys, bytes.Compare)
	}
	return resp, nil
}

// Leases lists the granted leases in ID order.
func (s *Store) Leases() *pb.LeaseLeasesResponse {
	s.mu.RLock()
	defer s.mu.RUnlock()
	resp := &pb.LeaseLeasesResponse{Header: s.header()}
	for _, id := range s.leaseIDs() {
		resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: id})
	}
	return resp
}

func (s *Store) leaseIDs() []int64 {
	ids := make([]int64, 0, len(s.leases))
	for id := range s.leases {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// NextDeadline returns the earliest local deadline of the granted leases, and false when there is
// none: the leader wakes then to revoke, rather than on its next tick.
func (s *Store) NextDeadline() (time.Time, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var next time.Time
	ok := false
	for _, l := range s.leases {
		if !ok || l.deadline.Before(next) {
			next, ok = l.deadline, true
		}
	}
	return next, ok
}

// Expired returns, in ID order, the leases whose local deadline is at or before now. Only the leader
// acts on it, by proposing a revoke for each; the store never drops a lease by itself.
func (s *Store) Expired(now time.Time) []int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []int64
	for _, id := range s.leaseIDs() {
		if !s.leases[id].deadline.After(now) {
			ids = append(ids, id)
		}
	}
	return ids
}
