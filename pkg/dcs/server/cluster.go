package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/names"
)

func (n *node) info() dcs.MemberInfo {
	_, lid := n.raft.LeaderWithID()
	mi := dcs.MemberInfo{Name: n.cfg.Name, RaftState: stateName(n.raft.State()), AppliedIndex: n.raft.AppliedIndex(),
		CommitIndex: n.raft.CommitIndex(), Term: n.raft.CurrentTerm(), Leader: string(lid),
		Alarms: n.fsm.alarmStrings(), ClusterVersion: n.fsm.clusterVersion(),
		HostAwareRevocations: n.revoked.n.Load()}
	if id := n.fsm.cluster(); id != 0 {
		mi.ClusterID = dcs.FormatClusterID(id)
	}
	mi.LastContactS = dcs.Seconds(0)
	if mi.RaftState != "leader" {
		mi.LastContactS = nil
		if lc := n.raft.LastContact(); !lc.IsZero() {
			mi.LastContactS = dcs.Seconds(time.Since(lc))
		}
	}
	return mi
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	}
	return "unknown"
}

func (n *node) handleRPC(ctx context.Context, m dcs.RPCMethod, p []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if m != dcs.RPCJoin && m != dcs.RPCRemove {
		if err := n.admitRPC(ctx, m, dcs.Member{}); err != nil {
			return nil, err
		}
	}
	switch m {
	case dcs.RPCForward:
		if !n.isLeader() {
			return nil, dcs.ErrNotLeader
		}
		p, err := n.admitForwarded(p)
		if err != nil {
			return nil, err
		}
		resp, err := n.applyLocal(ctx, p)
		if err != nil || resp == nil {
			return nil, err
		}
		b := make([]byte, 1+resp.Size())
		b[0] = p[0]
		_, err = resp.(interface{ MarshalTo([]byte) (int, error) }).MarshalTo(b[1:])
		return b, err
	case dcs.RPCRead:
		if !n.isLeader() {
			return nil, dcs.ErrNotLeader
		}
		if len(p) == 0 {
			return nil, fmt.Errorf("empty read")
		}
		if err := n.linearize(ctx); err != nil {
			return nil, err
		}
		return n.localRead(p[0], p[1:])
	case dcs.RPCJoin, dcs.RPCRemove:
		if m == dcs.RPCJoin {
			// A join may wait seconds for the newcomer to answer; a burst
			// of them must not pile up goroutines and connections.
			select {
			case n.joins <- struct{}{}:
				defer func() { <-n.joins }()
			default:
				return nil, fmt.Errorf("%d joins are already in progress on %s: retry in a moment", cap(n.joins), n.cfg.Name)
			}
		}
		var req joinRequest
		if err := json.Unmarshal(p, &req); err != nil {
			return nil, err
		}
		if req.Name == "" || m == dcs.RPCJoin && req.PeerAddr == "" {
			return nil, fmt.Errorf("a member needs a name and, to join, a peer address")
		}
		if err := names.Check("member", req.Name); m == dcs.RPCJoin && err != nil {
			return nil, err
		}
		if id := n.fsm.cluster(); req.ClusterID != "" && id != 0 && req.ClusterID != dcs.FormatClusterID(id) {
			return nil, fmt.Errorf("member %s belongs to cluster %s, and this is cluster %s: join it through a member of its own cluster", req.Name, req.ClusterID, dcs.FormatClusterID(id))
		}
		if err := n.admitRPC(ctx, m, req.Member); err != nil {
			return nil, err
		}
		return nil, n.callLeader(ctx, m, req.Member)
	case dcs.RPCInfo:
		return json.Marshal(n.info())
	case dcs.RPCTokenSign:
		return n.signForToken(ctx, p)
	case dcs.RPCTokenDone:
		return nil, n.tokenDone(ctx, p)
	case dcs.RPCMembers:
		if addr := n.leaderAddr(); !n.isLeader() && addr != "" {
			// The leader's configuration is the newest; a follower's may lag.
			if b, err := n.client(addr).call(ctx, dcs.RPCMembers, nil); err == nil {
				return b, nil
			}
		}
		ms, err := n.members(ctx)
		if err != nil {
			return nil, err
		}
		return json.Marshal(ms)
	}
	return nil, fmt.Errorf("unknown peer rpc %d", m)
}

// callLeader runs a membership RPC on the leader, wherever it is.
func (n *node) callLeader(ctx context.Context, m dcs.RPCMethod, mem dcs.Member) error {
	p, _ := json.Marshal(mem)
	for {
		var err error
		if n.isLeader() {
			if m == dcs.RPCJoin {
				err = n.join(ctx, mem)
			} else {
				err = n.remove(ctx, mem.Name)
			}
		} else if addr := n.leaderAddr(); addr != "" {
			_, err = n.client(addr).call(ctx, m, p)
		} else {
			err = dcs.ErrNotLeader
		}
		// Join and remove are idempotent: one whose answer was lost is
		// retried too.
		var de dcs.DialError
		var lost *dcs.LostCallError
		if !errors.Is(err, dcs.ErrNotLeader) && !errors.As(err, &de) && !errors.As(err, &lost) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no raft leader reachable: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// join adds mem as a nonvoter (the leader loop promotes it once caught
// up) and records its metadata. It is idempotent: the same name and
// address again only refreshes the metadata. A name already used with
// another address, or an address used by another name, is refused: the
// operator must remove the old member first.
func (n *node) join(ctx context.Context, mem dcs.Member) error {
	if !n.isLeader() {
		return dcs.ErrNotLeader
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return mapRaftError(err)
	}
	inConfig := false
	for _, s := range cf.Configuration().Servers {
		switch {
		case string(s.ID) == mem.Name && string(s.Address) == mem.PeerAddr:
			inConfig = true
		case string(s.ID) == mem.Name:
			return fmt.Errorf("a member named %q already exists at %s: choose another name, or remove it first with `pgherd dcs leave %s`", mem.Name, s.Address, mem.Name)
		case string(s.Address) == mem.PeerAddr:
			return fmt.Errorf("peer address %s is already used by member %q: remove that member first", mem.PeerAddr, s.ID)
		}
	}
	if err := n.checkJoinVersion(mem); err != nil {
		return err
	}
	if !inConfig {
		// Check that the leader can reach the newcomer before touching the
		// configuration, so an unreachable address adds nothing.
		if _, err := n.client(mem.PeerAddr).call(ctx, dcs.RPCInfo, nil); err != nil {
			return fmt.Errorf("the leader cannot reach the new member at %s: %v", mem.PeerAddr, err)
		}
	}
	if old, ok := n.fsm.member(mem.Name); !ok || old != mem {
		cmd, err := encodeJSON(opMemberSet, mem)
		if err != nil {
			return err
		}
		if _, err := n.applyLocal(ctx, cmd); err != nil {
			return err
		}
	}
	if inConfig {
		return nil
	}
	if err := n.raft.AddNonvoter(raft.ServerID(mem.Name), raft.ServerAddress(mem.PeerAddr), 0, applyTimeout(ctx)).Error(); err != nil {
		n.removeMeta(ctx, mem.Name)
		return fmt.Errorf("add member %s: %w", mem.Name, mapRaftError(err))
	}
	n.log.Info("member joined as nonvoter", "name", mem.Name, "peer", mem.PeerAddr)
	return nil
}

func (n *node) removeMeta(ctx context.Context, name string) {
	if cmd, err := encodeJSON(opMemberRemove, dcs.Member{Name: name}); err == nil {
		n.applyLocal(ctx, cmd)
	}
}

// remove takes name out of the Raft configuration and the member table,
// following the voting policy's plan: a witness is promoted first when
// that keeps the voter count odd, and the removal is refused (a
// *voting.QuorumError, both counts in its message) when the voters still
// reachable afterwards would not be a majority. Removing an absent member
// does nothing.
func (n *node) remove(ctx context.Context, name string) error {
	if !n.isLeader() {
		return dcs.ErrNotLeader
	}
	n.votingMu.Lock()
	defer n.votingMu.Unlock()
	plan, servers, err := n.planRemove(ctx, name)
	if err != nil {
		return err
	}
	for _, c := range plan {
		if err := n.applyChange(ctx, c, servers); err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
		n.log.Info("member removal", "step", c.String())
	}
	if _, ok := n.fsm.member(name); ok {
		n.removeMeta(ctx, name)
	}
	return nil
}

// members assembles the membership table with every member's own view,
// asked in parallel with a short timeout; an unreachable member is
// reported unhealthy with state unknown.
func (n *node) members(ctx context.Context) ([]dcs.MemberStatus, error) {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, mapRaftError(err)
	}
	servers := cf.Configuration().Servers
	out := make([]dcs.MemberStatus, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		meta, _ := n.fsm.member(string(s.ID))
		ms := dcs.MemberStatus{Name: string(s.ID), Role: meta.Role, Suffrage: "voter", RaftState: "unknown",
			PeerURL: meta.PeerURL, ClientURL: meta.ClientURL, Zone: meta.Zone, FastFailover: meta.FastFailover.Decl()}
		if s.Suffrage != raft.Voter {
			ms.Suffrage = "nonvoter"
		}
		out[i] = ms
		wg.Add(1)
		go func(i int, addr string) {
			defer wg.Done()
			var mi dcs.MemberInfo
			if addr == n.cfg.AdvertisePeer {
				mi = n.info()
			} else {
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				var err error
				if mi, err = n.peerInfo(cctx, addr); err != nil {
					return
				}
			}
			out[i].RaftState = mi.RaftState
			out[i].AppliedIndex = mi.AppliedIndex
			out[i].LastContactS = mi.LastContactS
			out[i].Healthy = mi.Leader != "" && mi.LastContactS != nil && *mi.LastContactS < (5*n.cfg.HeartbeatTimeout).Seconds()
		}(i, string(s.Address))
	}
	wg.Wait()
	return out, nil
}
