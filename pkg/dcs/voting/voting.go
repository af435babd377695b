// Package voting decides who votes in the embedded DCS's Raft
// configuration. It is pure: the leader describes the members as it sees
// them and applies the one change returned, then asks again on its next
// round, so every decision is made on a fresh view.
//
// The policy: every caught-up data member votes; a witness votes only
// while the number of data voters is even, so the number of voters stays
// odd; at most one witness votes. No change is ever proposed that would
// leave fewer reachable voters than a majority of the new voter set.
package voting

import (
	"fmt"
	"sort"
	"strings"
)

// Roles of a member, as the DCS records them.
const (
	RoleData    = "data"    // runs beside a PostgreSQL node
	RoleWitness = "witness" // holds only the DCS data: a tie-breaking voter
)

// Member is the leader's view of one member of the Raft configuration.
type Member struct {
	Name      string
	Role      string // RoleData or RoleWitness
	Zone      string // failure domain; "" when unknown
	Voter     bool
	Reachable bool // answered the leader recently
	CaughtUp  bool // its log is close enough to the leader's to count as current
}

// Action is a suffrage change.
type Action string

// The changes the leader can make.
const (
	Promote Action = "promote" // nonvoter becomes voter
	Demote  Action = "demote"  // voter becomes nonvoter
	Remove  Action = "remove"  // member leaves the configuration
)

// Change is one step for the leader to apply.
type Change struct {
	Action Action
	Name   string
	Reason string
}

func (c Change) String() string { return fmt.Sprintf("%s %s: %s", c.Action, c.Name, c.Reason) }

// Next returns the single change that moves the configuration toward the
// policy, or ok false when it already complies (or when the only remaining
// change would put the quorum at risk). Data members are promoted before a
// witness is demoted, so adding a third data member goes 2+1 → 3+1 → 3+0
// voters and never through an even, less tolerant, two-voter state.
func Next(members []Member) (c Change, ok bool) {
	ms := sorted(members)
	for _, m := range ms {
		if m.Role != RoleWitness && !m.Voter && m.CaughtUp {
			c = Change{Promote, m.Name, "caught-up data member votes"}
			if safe(ms, c) {
				return c, true
			}
		}
	}
	want := dataVoters(ms)%2 == 0
	var voting []Member
	for _, m := range ms {
		if m.Role == RoleWitness && m.Voter {
			voting = append(voting, m)
		}
	}
	switch {
	case !want && len(voting) > 0:
		c = Change{Demote, voting[0].Name, fmt.Sprintf("%d data voters: a witness vote would make the voter count even", dataVoters(ms))}
		return c, safe(ms, c)
	case want && len(voting) > 1:
		// Keep the first reachable one; demote another.
		keep := voting[0]
		for _, m := range voting {
			if m.Reachable {
				keep = m
				break
			}
		}
		for _, m := range voting {
			if m.Name != keep.Name {
				c = Change{Demote, m.Name, fmt.Sprintf("witness %s already votes: one witness vote keeps the voter count odd", keep.Name)}
				return c, safe(ms, c)
			}
		}
	case want && len(voting) == 0:
		for _, m := range ms {
			if m.Role == RoleWitness && m.CaughtUp {
				c = Change{Promote, m.Name, fmt.Sprintf("%d data voters: the witness vote makes the voter count odd", dataVoters(ms))}
				return c, safe(ms, c)
			}
		}
	}
	return Change{}, false
}

// PlanRemove returns the steps that take name out of the configuration:
// when removing a data voter leaves an even number of data voters and no
// witness votes, a caught-up witness is promoted first, so the voter count
// never drops to an even number on the way. It refuses, naming both
// counts, when any step would leave fewer reachable voters than a majority
// of the new voter set. Removing a name that is not a member plans nothing.
func PlanRemove(members []Member, name string) ([]Change, error) {
	ms := sorted(members)
	target, found := find(ms, name)
	if !found {
		return nil, nil
	}
	var plan []Change
	if target.Voter && target.Role != RoleWitness && (dataVoters(ms)-1)%2 == 0 && !witnessVotes(ms) {
		for _, m := range ms {
			if m.Role == RoleWitness && m.CaughtUp {
				plan = append(plan, Change{Promote, m.Name, fmt.Sprintf("promoted before %s leaves, so the voter count stays odd", name)})
				ms = apply(ms, plan[0])
				break
			}
		}
	}
	rm := Change{Remove, name, "requested"}
	if err := checkQuorum(ms, rm); err != nil {
		return nil, err
	}
	return append(plan, rm), nil
}

// QuorumError says that a change would leave the cluster without a quorum
// of reachable voters.
type QuorumError struct {
	Change    Change
	Reachable int // voters still reachable after the change
	Voters    int // size of the new voter set
}

func (e *QuorumError) Error() string {
	return fmt.Sprintf("refusing to %s %s: it would leave %d reachable voters of %d, and a quorum needs %d; bring the unreachable members back first",
		e.Change.Action, e.Change.Name, e.Reachable, e.Voters, e.Voters/2+1)
}

// Profiles for the failure-domain check.
const (
	ProfileProduction = "production" // a witness sharing a zone with a data member is refused
	ProfileTesting    = "testing"    // it is only a warning
)

// CheckJoin vets a new member against the current ones. It returns
// warnings to print, and an error when the member must not join: a
// witness in the same zone as a data member under the production profile
// (it would not add a failure domain). A second witness is accepted; the
// warning says it will not vote while another witness does.
func CheckJoin(members []Member, joining Member, profile string) (warnings []string, err error) {
	switch profile {
	case "", ProfileProduction, ProfileTesting:
	default:
		return nil, fmt.Errorf("profile %q: use %s or %s", profile, ProfileProduction, ProfileTesting)
	}
	if joining.Role != RoleWitness {
		return nil, nil
	}
	var others []string
	for _, m := range sorted(members) {
		if m.Role == RoleWitness && m.Name != joining.Name {
			others = append(others, m.Name)
		}
	}
	if len(others) > 0 {
		warnings = append(warnings, fmt.Sprintf("witness %s is already a member: %s joins as a nonvoter and votes only if the other witness is removed",
			strings.Join(others, ", "), joining.Name))
	}
	var unset, same []string
	if joining.Zone == "" {
		unset = append(unset, joining.Name)
	}
	for _, m := range sorted(members) {
		if m.Role == RoleWitness {
			continue
		}
		switch {
		case m.Zone == "":
			unset = append(unset, m.Name)
		case m.Zone == joining.Zone:
			same = append(same, m.Name)
		}
	}
	if len(same) > 0 {
		msg := fmt.Sprintf("witness %s is in zone %q like data member %s: it would not add a failure domain, since one zone outage would take both",
			joining.Name, joining.Zone, strings.Join(same, ", "))
		if profile == ProfileTesting {
			warnings = append(warnings, msg+" (allowed by profile testing)")
		} else {
			return warnings, fmt.Errorf("%s; put the witness in another zone (--zone), or use --profile testing", msg)
		}
	}
	if len(unset) > 0 {
		warnings = append(warnings, fmt.Sprintf("no zone set for %s: failure domains cannot be checked (set --zone, or zone in site.yaml)", strings.Join(unset, ", ")))
	}
	return warnings, nil
}

// safe reports whether c keeps a reachable majority.
func safe(ms []Member, c Change) bool { return checkQuorum(ms, c) == nil }

func checkQuorum(ms []Member, c Change) error {
	after := apply(ms, c)
	voters, reachable := 0, 0
	for _, m := range after {
		if m.Voter {
			voters++
			if m.Reachable {
				reachable++
			}
		}
	}
	if voters == 0 || reachable < voters/2+1 {
		return &QuorumError{Change: c, Reachable: reachable, Voters: voters}
	}
	return nil
}

// apply returns a copy of ms with c made.
func apply(ms []Member, c Change) []Member {
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		if m.Name == c.Name {
			switch c.Action {
			case Remove:
				continue
			case Promote:
				m.Voter = true
			case Demote:
				m.Voter = false
			}
		}
		out = append(out, m)
	}
	return out
}

func dataVoters(ms []Member) int {
	n := 0
	for _, m := range ms {
		if m.Voter && m.Role != RoleWitness {
			n++
		}
	}
	return n
}

func witnessVotes(ms []Member) bool {
	for _, m := range ms {
		if m.Voter && m.Role == RoleWitness {
			return true
		}
	}
	return false
}

func find(ms []Member, name string) (Member, bool) {
	for _, m := range ms {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

func sorted(ms []Member) []Member {
	out := append([]Member(nil), ms...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
