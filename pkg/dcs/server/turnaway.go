package server

import (
	"io"
	"net/http"
	"strings"
	"time"
)

// A member cut off from its leader answers what needs one with etcd's "no
// leader" (Unavailable, HTTP 503 on the gateway). etcd's Go client then
// tries its next endpoint, but Patroni 3.0.2's etcd3 client retries the
// same endpoint on Unavailable and moves to the next one only on a
// transport error: a Patroni whose member lost its peer link while its
// client port answers would demote after retry_timeout although the rest
// of the cluster is healthy. So once this member has known no leader for
// longer than an election timeout, it ends the HTTP/1 gateway connections
// of requests that need a leader without an answer, and such a client
// goes to its next endpoint. gRPC clients keep their "no leader": etcd's
// Go client retries reads elsewhere on it.

// contactLoop notes, every quarter of a heartbeat timeout, whether this
// member is in contact with a leader, and sets turningAway once it has
// not been for longer than an election timeout.
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
	if now.Sub(lost) >= n.cfg.HeartbeatTimeout && !n.turningAway.Swap(true) {
		n.log.Warn("no leader for longer than an election timeout: closing the HTTP connections of client requests that need one, so that clients (Patroni) try another member",
			"election_timeout", n.cfg.HeartbeatTimeout)
	}
	return lost
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
