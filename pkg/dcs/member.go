package dcs

import (
	"hash/fnv"
	"time"
)

// Member is the replicated description of one member. Every member holds
// the whole table in its state machine, so any of them can answer a
// member list.
type Member struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	Zone      string `json:"zone,omitempty"`
	PeerAddr  string `json:"peer_addr"` // host:port, the Raft address
	PeerURL   string `json:"peer_url"`
	ClientURL string `json:"client_url"`
	// ApplyVersion is the newest cluster version whose Apply rules the
	// member's binary speaks; absent (0) from members older than version 2,
	// which speak version 1.
	ApplyVersion int `json:"apply_version,omitempty"`
	// FastFailover is what the member declares for host-aware revocation
	// (a data member's configuration); zero when off.
	FastFailover FastFailover `json:"fast_failover,omitzero"`
}

// MemberID is the stable etcd-style member ID of a name: the same name
// always maps to the same non-zero ID, on every member and after restarts.
func MemberID(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte("pgherd-member/" + name))
	if id := h.Sum64(); id != 0 {
		return id
	}
	return 1
}

// MemberStatus is one row of `pgherd dcs members`.
type MemberStatus struct {
	Name         string `json:"name"`
	Role         string `json:"role"`
	Suffrage     string `json:"suffrage"`   // voter | nonvoter
	RaftState    string `json:"raft_state"` // leader | follower | candidate | unknown
	PeerURL      string `json:"peer_url"`
	ClientURL    string `json:"client_url"`
	Zone         string `json:"zone"`
	AppliedIndex uint64 `json:"applied_index"`
	// LastContactS is the time since the last leader contact in seconds
	// (millisecond precision): 0 on the leader, nil when unknown.
	LastContactS *float64 `json:"last_contact_s"`
	Healthy      bool     `json:"healthy"`
	// FastFailover is the member's host-aware revocation declaration, nil
	// when it declares none.
	FastFailover *FastFailoverDecl `json:"fast_failover,omitempty"`
	// Service is what this host's service manager says of the member, for
	// members set up here (Local.Annotate); empty elsewhere.
	Service string `json:"service,omitempty"`
}

// Seconds is d in seconds rounded to the millisecond, or nil when d is
// negative (unknown).
func Seconds(d time.Duration) *float64 {
	if d < 0 {
		return nil
	}
	s := d.Round(time.Millisecond).Seconds()
	return &s
}

// MemberInfo is what a member says about itself: its Raft state, indexes,
// term, the leader it follows and how long ago it heard from it.
type MemberInfo struct {
	Name         string `json:"name"`
	RaftState    string `json:"raft_state"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	Term         uint64 `json:"term"`
	Leader       string `json:"leader"`
	// LastContactS is the time since the last leader contact in seconds:
	// 0 on the leader, nil when it never heard from one.
	LastContactS *float64 `json:"last_contact_s"`
	// Alarms are the cluster's active alarms as etcdctl alarm list prints
	// them ("memberID:N alarm:NOSPACE"): writes are refused while NOSPACE is.
	Alarms []string `json:"alarms"`
	// ClusterID is the cluster's ID (16 hex digits) once this member knows it.
	ClusterID string `json:"cluster_id,omitempty"`
	// ClusterVersion is the replicated cluster version this member applies.
	ClusterVersion int `json:"cluster_version,omitempty"`
	// HostAwareRevocations counts the leader-key leases this member revoked
	// by the host-aware rule (fast_failover) since it started.
	HostAwareRevocations uint64 `json:"host_aware_revocations"`
}
