package dcs

import (
	"hash/fnv"
	"sort"
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

func sortedMembers(m map[string]Member) []Member {
	out := make([]Member, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
