package patroni

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ErrRefused marks a switchover or failover refused before Patroni was
// asked, for a reason patronictl checks too.
var ErrRefused = errors.New("refused")

// eligible reports whether m can take over the leader role: a running
// replica (Patroni also checks its lag and tags when asked).
func eligible(m Member) bool {
	r := Role(m.Role)
	return (r == "replica" || r == "sync_standby") && m.State == "running"
}

// Eligible lists the members that can take over the leader role.
func (c *Cluster) Eligible() []string {
	var out []string
	for _, m := range c.Members {
		if eligible(m) {
			out = append(out, m.Name)
		}
	}
	return out
}

func (c *Cluster) member(name string) (Member, bool) {
	for _, m := range c.Members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

func (c *Cluster) names() string {
	var ns []string
	for _, m := range c.Members {
		ns = append(ns, m.Name)
	}
	return strings.Join(ns, ", ")
}

func orNone(ns []string) string {
	if len(ns) == 0 {
		return "none"
	}
	return strings.Join(ns, ", ")
}

// CheckSwitchover refuses, as patronictl does before it calls Patroni, a
// switchover of cluster scope to candidate ("" lets Patroni choose): the
// cluster must have a leader (leader, when given, must be it), candidate
// must be a running replica, and a paused cluster needs a candidate.
func (c *Cluster) CheckSwitchover(scope, leader, candidate string) error {
	l, ok := c.Leader()
	if !ok {
		return fmt.Errorf("%w: cluster %s has no leader to switch over from: use 'pgherd patroni failover' with --candidate", ErrRefused, scope)
	}
	if leader != "" && leader != l.Name {
		return fmt.Errorf("%w: %s is not the leader of cluster %s (%s is)", ErrRefused, leader, scope, l.Name)
	}
	if candidate == "" {
		if c.Pause {
			return fmt.Errorf("%w: cluster %s is paused: name the new leader with --candidate (eligible: %s)", ErrRefused, scope, orNone(c.Eligible()))
		}
		if len(c.Eligible()) == 0 {
			return fmt.Errorf("%w: cluster %s has no running replica to switch over to", ErrRefused, scope)
		}
		return nil
	}
	return c.checkCandidate(scope, candidate)
}

// CheckFailover refuses a failover of cluster scope to candidate that
// Patroni would refuse: an unknown member, the leader itself, or a member
// that is not a running replica.
func (c *Cluster) CheckFailover(scope, candidate string) error {
	return c.checkCandidate(scope, candidate)
}

func (c *Cluster) checkCandidate(scope, candidate string) error {
	m, ok := c.member(candidate)
	switch {
	case !ok:
		return fmt.Errorf("%w: cluster %s has no member %s (members: %s)", ErrRefused, scope, candidate, c.names())
	case Role(m.Role) == "leader" || m.Role == "standby_leader":
		return fmt.Errorf("%w: %s already leads cluster %s: choose a replica (eligible: %s)", ErrRefused, candidate, scope, orNone(c.Eligible()))
	case !eligible(m):
		return fmt.Errorf("%w: member %s is %s, not a running replica: it cannot take over (eligible: %s)", ErrRefused, candidate, m.State, orNone(c.Eligible()))
	}
	return nil
}

// CheckReinit refuses, as Patroni would, to rebuild member of cluster
// scope when it is the leader (a reinit replaces a replica's data with a
// copy of the leader's).
func (c *Cluster) CheckReinit(scope, member string) error {
	if l, ok := c.Leader(); ok && l.Name == member {
		return fmt.Errorf("%w: %s leads cluster %s, and reinit rebuilds a replica from the leader: switch over first ('pgherd patroni switchover' with --candidate; eligible: %s)",
			ErrRefused, member, scope, orNone(c.Eligible()))
	}
	return nil
}

// ExplainRefusal turns Patroni's answer to a switchover or failover that
// it refused into a sentence saying why and what to do; other errors are
// returned as they are.
func ExplainRefusal(err error, action, scope, candidate, logsRef string) error {
	var se *StatusError
	if !errors.As(err, &se) {
		return err
	}
	body := strings.TrimSpace(se.Body)
	switch {
	case se.Code == http.StatusServiceUnavailable:
		who := "Patroni's choice"
		if candidate != "" {
			who = candidate
		}
		return fmt.Errorf("%s of cluster %s to %s failed: the candidate did not take over in time, or stopped answering (Patroni says %q); the old leader keeps the role: see 'pgherd patroni list' and 'pgherd patroni logs %s'",
			action, scope, who, body, logsRef)
	case se.Code == http.StatusPreconditionFailed || se.Code == http.StatusBadRequest:
		return fmt.Errorf("%s of cluster %s refused by Patroni: %s; see 'pgherd patroni list'", action, scope, body)
	}
	return err
}
