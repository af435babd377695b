package dcs

import (
	"fmt"
	"strings"
	"time"
)

// FastFailover is a data member's declaration of the Patroni member Node
// that runs beside it and of that cluster's leader key, LeaderKey
// (site.yaml patroni.dcs.embedded: pgherd writes it for every member it
// sets up beside a Patroni member). Declared alone, it holds the key: the
// DCS refuses a plain put that would give it to another holder while its
// holder's lease lives (a resumed Patroni's stale rewrite, pkg/dcs/DESIGN.md).
// With Detect and LoopWait (fast_failover enabled), it also arms host-aware
// revocation: when Node holds LeaderKey, the DCS leader may revoke that
// key's lease once this member has been out of contact for Detect and the
// lease has not been refreshed for LoopWait + Detect. The zero value
// declares nothing. It is part of the replicated member table, so
// whichever member leads knows every declaration.
type FastFailover struct {
	// LeaderKey is Patroni's leader key, /<namespace>/<scope>/leader.
	LeaderKey string `yaml:"leader_key" json:"leader_key"`
	// Node is the Patroni member name beside this DCS member (the value
	// Patroni writes into the leader key).
	Node     string        `yaml:"node" json:"node"`
	Detect   time.Duration `yaml:"detect,omitempty" json:"detect,omitempty"`
	LoopWait time.Duration `yaml:"loop_wait,omitempty" json:"loop_wait,omitempty"`
}

// FastFailoverDecl is a declaration as `dcs members` shows it.
type FastFailoverDecl struct {
	LeaderKey string `json:"leader_key"`
	Node      string `json:"node"`
	DetectS   int    `json:"detect_s"`
}

// Decl returns f as `dcs members` shows it, nil when f declares nothing;
// DetectS is 0 when it arms no revocation.
func (f FastFailover) Decl() *FastFailoverDecl {
	if !f.Declared() {
		return nil
	}
	return &FastFailoverDecl{LeaderKey: f.LeaderKey, Node: f.Node, DetectS: int(f.Detect.Seconds())}
}

// Declared reports whether f declares a Patroni member and its leader key.
func (f FastFailover) Declared() bool { return f.LeaderKey != "" }

// Armed reports whether f also arms host-aware revocation.
func (f FastFailover) Armed() bool { return f.Declared() && f.Detect > 0 }

func (f FastFailover) validate(role string) error {
	if f.Declared() && role == RoleWitness {
		return fmt.Errorf("fast_failover: a witness runs beside no Patroni member: remove it from the witness's configuration")
	}
	if !f.Declared() {
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
	case (f.Detect != 0 || f.LoopWait != 0) && (f.Detect < time.Second || f.LoopWait < time.Second):
		return fmt.Errorf("fast_failover: detect %s and loop_wait %s: want at least 1s each to arm host-aware revocation, or neither to only declare the Patroni member", f.Detect, f.LoopWait)
	}
	return nil
}
