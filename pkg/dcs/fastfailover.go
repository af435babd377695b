package dcs

import (
	"fmt"
	"strings"
	"time"
)

// FastFailover is a data member's declaration for host-aware revocation
// (site.yaml patroni.dcs.embedded.fast_failover): the Patroni member Node
// runs beside this DCS member, and when Node holds LeaderKey, the DCS
// leader may revoke that key's lease once this member has been out of
// contact for Detect and the lease has not been refreshed for LoopWait +
// Detect. The zero value declares nothing. It is part of the replicated
// member table, so whichever member leads knows every declaration.
type FastFailover struct {
	// LeaderKey is Patroni's leader key, /<namespace>/<scope>/leader.
	LeaderKey string `yaml:"leader_key" json:"leader_key"`
	// Node is the Patroni member name beside this DCS member (the value
	// Patroni writes into the leader key).
	Node     string        `yaml:"node" json:"node"`
	Detect   time.Duration `yaml:"detect" json:"detect"`
	LoopWait time.Duration `yaml:"loop_wait" json:"loop_wait"`
}

// FastFailoverDecl is a declaration as `dcs members` shows it.
type FastFailoverDecl struct {
	LeaderKey string `json:"leader_key"`
	Node      string `json:"node"`
	DetectS   int    `json:"detect_s"`
}

// Decl returns f as `dcs members` shows it, nil when f declares nothing.
func (f FastFailover) Decl() *FastFailoverDecl {
	if !f.Armed() {
		return nil
	}
	return &FastFailoverDecl{LeaderKey: f.LeaderKey, Node: f.Node, DetectS: int(f.Detect.Seconds())}
}

// Armed reports whether f declares anything.
func (f FastFailover) Armed() bool { return f.LeaderKey != "" }

func (f FastFailover) validate(role string) error {
	if f.Armed() && role == RoleWitness {
		return fmt.Errorf("fast_failover: a witness runs beside no Patroni member: remove it from the witness's configuration")
	}
	if !f.Armed() {
		if f != (FastFailover{}) {
			return fmt.Errorf("fast_failover: leader_key is required")
		}
		return nil
	}
	switch {
	case !strings.HasPrefix(f.LeaderKey, "/") || !strings.HasSuffix(f.LeaderKey, "/leader"):
		return fmt.Errorf("fast_failover: leader_key %q: want Patroni's /NAMESPACE/SCOPE/leader", f.LeaderKey)
	case f.Node == "":
		return fmt.Errorf("fast_failover: node (the Patroni member beside this DCS member) is required")
	case f.Detect < time.Second || f.LoopWait < time.Second:
		return fmt.Errorf("fast_failover: detect %s and loop_wait %s: want at least 1s each", f.Detect, f.LoopWait)
	}
	return nil
}
