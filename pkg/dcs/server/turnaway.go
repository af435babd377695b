package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// A member cut off from its leader answers what needs one with etcd's "no
// leader" (Unavailable, HTTP 503 on the gateway). etcd's Go client then
// tries its next endpoint, but Patroni 3.0.2's etcd3 client retries the
// same endpoint on Unavailable and moves to the next one only on a
// transport error: a Patroni whose member lost its peer link while its
// client port answers would demote after retry_timeout although the rest
// of the cluster is healthy. So once this member has known no leader for
// longer than an election timeout, and the other voters it asks show that
// it is cut off rather than electing a leader with them (isolated), it
// ends the HTTP/1 gateway connections of requests that need a leader
// without an answer, and such a client goes to its next endpoint. gRPC
// clients keep their "no leader": etcd's Go client retries reads
// elsewhere on it.

// contactLoop notes, every quarter of a heartbeat timeout, whether this
// member is in contact with a leader, and sets turningAway once it has
// not been for longer than an election timeout while the cluster is not
// merely electing one (cutOff).
func (n *node) contactLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(n.cfg.HeartbeatTimeout / 4)
	defer tick.Stop()
	var lost time.Time
	for {
		select {
		case <-n.closed:
			return
		case <-tick.C:
		}
		lost = n.noteContact(lost, time.Now())
	}
}

// noteContact updates turningAway at now, lost being when this member
// found itself without a leader (zero while it had one), and returns the
// new value of lost. It logs each switch once.
func (n *node) noteContact(lost, now time.Time) time.Time {
	if n.inContact() {
		if n.turningAway.Swap(false) {
			n.log.Info("in contact with a leader again: answering every client request")
		}
		return time.Time{}
	}
	if lost.IsZero() {
		return now
	}
	// The election timeout is the heartbeat timeout (openNode).
	if now.Sub(lost) < n.cfg.HeartbeatTimeout {
		return lost
	}
	away := n.cutOff()
	switch was := n.turningAway.Swap(away); {
	case away && !was:
		n.log.Warn("no leader for longer than an election timeout, and none to be elected with the members that answer: closing the HTTP connections of client requests that need a leader, so that clients (Patroni) try another member",
			"election_timeout", n.cfg.HeartbeatTimeout)
	case !away && was:
		n.log.Info("a quorum of members without a leader answers: answering \"no leader\" while they elect one")
	}
	return lost
}

// cutOff asks the other voters of this member's Raft configuration for
// their state (each within half a heartbeat timeout) and reports whether
// this member, without a leader, is cut off from the cluster rather than
// taking part in an election (isolated).
func (n *node) cutOff() bool {
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return true
	}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		voters  int
		self    bool
		answers []dcs.MemberInfo
	)
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if string(s.ID) == n.cfg.Name {
			self = true
			continue
		}
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), n.cfg.HeartbeatTimeout/2)
			defer cancel()
			if mi, err := n.peerInfo(ctx, addr); err == nil {
				mu.Lock()
				answers = append(answers, mi)
				mu.Unlock()
			}
		}(string(s.Address))
	}
	wg.Wait()
	return isolated(voters, self, answers, n.cfg.HeartbeatTimeout)
}

// isolated reports whether a member without a leader is cut off from its
// cluster, given the number of voters, whether it is one of them, and what
// the other voters that answered said of themselves: cut off when one of
// them is in contact with a leader (a leader this member cannot hear), or
// when it and the answering voters without a leader are no quorum (no
// election can succeed on its side). A quorum of voters without a leader
// that can reach each other is an election under way, which ends within a
// few election timeouts: clients are better off waiting for it there.
func isolated(voters int, self bool, answers []dcs.MemberInfo, heartbeat time.Duration) bool {
	leaderless := 0
	if self {
		leaderless++
	}
	for _, mi := range answers {
		if mi.RaftState == stateName(raft.Leader) ||
			mi.Leader != "" && mi.LastContactS != nil && *mi.LastContactS < heartbeat.Seconds() {
			return true
		}
		if mi.RaftState != stateName(raft.Shutdown) {
			leaderless++
		}
	}
	return leaderless < voters/2+1
}

// turnsAway reports whether this member turns away requests that need a
// leader now: it has been without one for an election timeout and still
// is (a leader found since the last check is not waited for).
func (n *node) turnsAway() bool { return n.turningAway.Load() && !n.inContact() }

// needsLeader reports whether a gateway request (its path after the /v3
// aliases) can only be answered through a leader: the key-value, lease and
// watch services and alarms. /version, /health, the member list,
// maintenance status and authentication answer from this member alone.
func needsLeader(path string) bool {
	for _, p := range []string{"/v3/kv/", "/v3/lease/", "/v3/maintenance/alarm"} {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return path == "/v3/watch"
}

// turnAway ends an HTTP/1 request's connection without an answer, after
// reading a body of known size (so that the close is a FIN, not a reset,
// where it can be). It reports false, having done nothing, on HTTP/2,
// which cannot hand its connection over.
func turnAway(w http.ResponseWriter, r *http.Request) bool {
	if r.ProtoMajor != 1 {
		return false
	}
	if r.ContentLength > 0 && r.ContentLength <= maxGatewayBody {
		io.Copy(io.Discard, r.Body)
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	conn.Close()
	return true
}
