package witness

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/dcs/voting"
)

// members returns the membership as the first member of peers that
// answers reports it (each member forwards to the leader).
func (e *Env) members(ctx context.Context, peers []string) ([]dcs.MemberStatus, error) {
	return e.membersWith(ctx, peers, e.Creds())
}

// membersWith is members with the credential cred.
func (e *Env) membersWith(ctx context.Context, peers []string, cred dcs.TLSConfig) ([]dcs.MemberStatus, error) {
	var errs []error
	for _, p := range peers {
		ac, err := dcs.NewAdminClient(p, cred)
		if err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ms, err := ac.Members(cctx)
		cancel()
		ac.Close()
		if err == nil {
			return ms, nil
		}
		if hint := etcdHint(p); hint != "" {
			return nil, fmt.Errorf("%w at %s: %s", ErrNoPeer, p, hint)
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("%w at %s: %v; check --peer: it is the peer port (listen_peer) of a running pgherd dcs member",
		ErrNoPeer, strings.Join(peers, ", "), errors.Join(errs...))
}

// etcdHint returns advice when addr answers etcd's HTTP /version, or
// offers HTTP/2 over TLS (a client port with TLS, which a peer port never
// offers): it is an etcd server or a DCS client port, not a peer port.
func etcdHint(addr string) string {
	if !answersHTTP(addr) && !offersH2(addr) {
		return ""
	}
	return "this address answers the etcd API: it is an etcd server or a DCS client port, not a pgherd dcs peer port. " +
		"Give --peer the listen_peer address of a pgherd dcs member; a witness cannot join an external etcd cluster " +
		"(there, add a third etcd member with `etcdctl member add`, or move Patroni to pgherd's embedded DCS: patroni.dcs.kind: embedded)"
}

func answersHTTP(addr string) bool {
	c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get("http://" + addr + "/version")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return strings.Contains(string(b), "etcdserver")
}

// offersH2 only looks at the protocol the server picks in the handshake;
// it neither trusts nor sends anything.
func offersH2(addr string) bool {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(&d, "tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}) //nolint:gosec // probing only
	if err != nil {
		return false
	}
	defer c.Close()
	p := c.ConnectionState().NegotiatedProtocol
	return p == "h2" || p == "http/1.1"
}

// Creds is the credential presented to members' peer ports: PeerTLS when
// set, else the administrator's on a data member's host, else the first
// local member's own (a witness's host).
func (e *Env) Creds() dcs.TLSConfig {
	if e.PeerTLS.Enabled() {
		return e.PeerTLS
	}
	if t, ok := e.Local.AdminTLS(); ok {
		return t
	}
	if cfgs, err := e.Local.Configs(); err == nil {
		for _, c := range cfgs {
			if c.PeerTLS.Enabled() {
				return c.PeerTLS
			}
		}
	}
	return dcs.TLSConfig{}
}

// votingView turns a member list into the voting policy's view.
func votingView(ms []dcs.MemberStatus) []voting.Member {
	out := make([]voting.Member, len(ms))
	for i, m := range ms {
		out[i] = voting.Member{Name: m.Name, Role: m.Role, Zone: m.Zone, Voter: m.Suffrage == "voter", Reachable: m.Healthy, CaughtUp: m.Healthy}
	}
	return out
}

// clusterPeers is where to ask about the cluster: peer when given, else
// the members configured on this host and the peers they joined through.
func (e *Env) clusterPeers(peer string) ([]string, error) {
	if peer != "" {
		return []string{peer}, nil
	}
	local, err := e.LocalMembers()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range local {
		out = append(out, c.PeerAddr())
		out = append(out, c.Join...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no DCS member is configured on this host (%s); give --peer HOST:PORT of any member", ErrNoPeer, e.Local.Dir)
	}
	return out, nil
}

// List returns the cluster's witnesses, with the same fields as
// `pgherd dcs members`. peer may be "" (see clusterPeers).
func List(ctx context.Context, env *Env, peer string) ([]dcs.MemberStatus, error) {
	ms, err := Members(ctx, env, peer)
	if err != nil {
		return nil, err
	}
	out := []dcs.MemberStatus{}
	for _, m := range ms {
		if m.Role == dcs.RoleWitness {
			out = append(out, m)
		}
	}
	return out, nil
}

// Status is one witness's view of Raft, and how far it trails the leader.
type Status struct {
	dcs.MemberStatus
	Leader      string `json:"leader"`
	Term        uint64 `json:"term"`
	CommitIndex uint64 `json:"commit_index"`
	// LeaderIndex is the leader's applied index; Lag is LeaderIndex
	// minus the witness's applied index (0 when it is the leader).
	LeaderIndex uint64 `json:"leader_applied_index"`
	Lag         uint64 `json:"applied_index_lag"`
}

// GetStatus reports the witness called name, configured on this host.
func GetStatus(ctx context.Context, env *Env, name string) (*Status, error) {
	cfg, err := env.LoadWitness(name)
	if err != nil {
		return nil, err
	}
	self := cfg.PeerAddr()
	ms, err := env.members(ctx, append([]string{self}, cfg.Join...))
	if err != nil {
		return nil, err
	}
	st := &Status{}
	found := false
	for _, m := range ms {
		if m.Name == name {
			st.MemberStatus, found = m, true
		}
		if m.RaftState == "leader" {
			st.Leader, st.LeaderIndex = m.Name, m.AppliedIndex
		}
	}
	if !found {
		return nil, fmt.Errorf("%s is configured on this host but is not a member of the cluster: remove it with `pgherd witness remove %s` and add it again", name, name)
	}
	if sst, err := env.Local.ServiceState(ctx, name); err == nil {
		st.Service = sst.Words()
	}
	ac, err := dcs.NewAdminClient(self, env.Creds())
	if err != nil {
		return nil, err
	}
	defer ac.Close()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if mi, err := ac.Status(cctx); err == nil {
		st.Term, st.CommitIndex = mi.Term, mi.CommitIndex
		if st.Leader == "" {
			st.Leader = mi.Leader
		}
	}
	if st.LeaderIndex > st.AppliedIndex {
		st.Lag = st.LeaderIndex - st.AppliedIndex
	}
	return st, nil
}

// unreachable reports whether err means the member could not be reached
// (so another member may be tried).
func unreachable(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF)
}

// Members returns every member of the cluster (`pgherd dcs members`).
// peer may be "" (see clusterPeers).
func Members(ctx context.Context, env *Env, peer string) ([]dcs.MemberStatus, error) {
	peers, err := env.clusterPeers(peer)
	if err != nil {
		return nil, err
	}
	return env.members(ctx, peers)
}
