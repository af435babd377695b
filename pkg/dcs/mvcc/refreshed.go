package mvcc

import "time"

// LeaseRefreshed returns when lease id was last granted or refreshed on
// this member's monotonic clock (its deadline less its granted TTL: every
// keepalive refreshes to the granted TTL), and false for an unknown lease.
// Host-aware revocation (pkg/dcs/server/revoke.go) reads it on the leader.
func (s *Store) LeaseRefreshed(id int64) (time.Time, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l := s.leases[id]
	if l == nil {
		return time.Time{}, false
	}
	return l.deadline.Add(-time.Duration(l.ttl) * time.Second), true
}
