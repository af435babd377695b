package server

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// Host-aware revocation needs to know, on the leader, how long each member
// has been out of contact. Raft's own heartbeats cannot say it: hashicorp/
// raft's transport blocks on a slow follower and keeps its per-follower
// contact times private. So the leader asks every member for its RPCInfo
// (the cheapest call every version answers) every heartbeatEvery, each call
// bounded by heartbeatTimeout, and notes when each answered. A new leader
// counts every member as last seen at its election: it cannot know better,
// and counting from then can only delay a revocation, never hasten it.

// heartbeatEvery is how often the leader asks each member; heartbeatTimeout
// bounds one question (a member that does not answer within it, frozen or
// cut off, is not seen).
const (
	heartbeatEvery   = 250 * time.Millisecond
	heartbeatTimeout = time.Second
)

// contacts is the leader's view of when each member last answered.
type contacts struct {
	mu       sync.Mutex
	elected  time.Time // zero while this member does not lead
	term     uint64    // the Raft term elected belongs to
	seen     map[string]time.Time
	inFlight map[string]bool
}

func newContacts() *contacts {
	return &contacts{seen: map[string]time.Time{}, inFlight: map[string]bool{}}
}

// lead records that this member leads in term at now: on the first call
// in a term (a leadership lost and won again between two calls is a new
// term), every member counts as last seen now.
func (c *contacts) lead(now time.Time, term uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.elected.IsZero() || c.term != term {
		c.elected, c.term = now, term
		clear(c.seen)
	}
}

// follow records that this member does not lead.
func (c *contacts) follow() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.elected = time.Time{}
}

// lastSeen is when member name last answered this leader, or its election
// when later; zero when this member does not lead.
func (c *contacts) lastSeen(name string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.elected.IsZero() {
		return time.Time{}
	}
	if t := c.seen[name]; t.After(c.elected) {
		return t
	}
	return c.elected
}

// start reports whether a question to name may be sent (none in flight)
// and marks one in flight.
func (c *contacts) start(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inFlight[name] {
		return false
	}
	c.inFlight[name] = true
	return true
}

// done ends the question to name; answered at t when ok.
func (c *contacts) done(name string, t time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.inFlight, name)
	if ok && !c.elected.IsZero() && t.After(c.seen[name]) {
		c.seen[name] = t
	}
}

// peerInfo asks the member at addr for its view of Raft (RPCInfo).
func (n *node) peerInfo(ctx context.Context, addr string) (dcs.MemberInfo, error) {
	var mi dcs.MemberInfo
	b, err := n.client(addr).call(ctx, dcs.RPCInfo, nil)
	if err == nil {
		err = json.Unmarshal(b, &mi)
	}
	return mi, err
}

// answers reports whether the member at addr answers with a running Raft
// (a member shutting down may still answer on an open connection).
func (n *node) answers(ctx context.Context, addr string) bool {
	mi, err := n.peerInfo(ctx, addr)
	return err == nil && mi.RaftState != stateName(raft.Shutdown)
}

// heartbeatLoop asks every other member of the Raft configuration for its
// info while this member leads.
func (n *node) heartbeatLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(heartbeatEvery)
	defer tick.Stop()
	for {
		select {
		case <-n.closed:
			return
		case <-tick.C:
		}
		if !n.isLeader() {
			n.contacts.follow()
			continue
		}
		n.contacts.lead(time.Now(), n.raft.CurrentTerm())
		cf := n.raft.GetConfiguration()
		if cf.Error() != nil {
			continue
		}
		for _, s := range cf.Configuration().Servers {
			name, addr := string(s.ID), string(s.Address)
			if name == n.cfg.Name || !n.contacts.start(name) {
				continue
			}
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), heartbeatTimeout)
				defer cancel()
				n.contacts.done(name, time.Now(), n.answers(ctx, addr))
			}()
		}
	}
}
