package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgherd/pgherd/pkg/dcs/voting"
)

// catchUpSlack is how many entries a nonvoter may trail the leader's
// commit index by and still count as caught up.
const catchUpSlack = 64

// votingView is the leader's view of the configuration for the voting
// policy: each member's role and zone from the member table, its suffrage
// from Raft, and whether it answers and is caught up, asked in parallel.
func (n *node) votingView(ctx context.Context) ([]voting.Member, []raft.Server, error) {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, nil, mapRaftError(err)
	}
	servers := cf.Configuration().Servers
	commit := n.raft.CommitIndex()
	out := make([]voting.Member, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		meta, _ := n.fsm.member(string(s.ID))
		out[i] = voting.Member{Name: string(s.ID), Role: n.role(s.ID), Zone: meta.Zone, Voter: s.Suffrage == raft.Voter}
		if string(s.ID) == n.cfg.Name {
			out[i].Reachable, out[i].CaughtUp = true, true
			continue
		}
		wg.Add(1)
		go func(m *voting.Member, addr string) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			mi, err := n.peerInfo(cctx, addr)
			if err != nil || mi.RaftState == "unknown" {
				return // a member whose Raft has shut down answers, but cannot vote
			}
			m.Reachable = true
			m.CaughtUp = mi.AppliedIndex+catchUpSlack >= commit
		}(&out[i], string(s.Address))
	}
	wg.Wait()
	return out, servers, nil
}

// reconcileVoters makes the one change the voting policy asks for (see
// package voting): caught-up data members vote, a witness votes only
// while the data voters are even in number, and no change leaves fewer
// reachable voters than a majority. The leader never demotes itself in
// place: it hands leadership over and the next leader makes the change.
func (n *node) reconcileVoters(ctx context.Context) {
	n.votingMu.Lock()
	defer n.votingMu.Unlock()
	view, servers, err := n.votingView(ctx)
	if err != nil {
		return
	}
	c, ok := voting.Next(view)
	if !ok {
		return
	}
	if err := n.applyChange(ctx, c, servers); err != nil {
		n.log.Warn("voting policy", "change", c.String(), "err", err)
		return
	}
	n.log.Info("voting policy", "change", c.String())
}

func (n *node) applyChange(ctx context.Context, c voting.Change, servers []raft.Server) error {
	id := raft.ServerID(c.Name)
	to := applyTimeout(ctx)
	switch c.Action {
	case voting.Promote:
		for _, s := range servers {
			if s.ID == id {
				return mapRaftError(n.raft.AddVoter(id, s.Address, 0, to).Error())
			}
		}
		return fmt.Errorf("%s is no longer a member", c.Name)
	case voting.Demote:
		if c.Name == n.cfg.Name {
			return mapRaftError(n.raft.LeadershipTransfer().Error())
		}
		return mapRaftError(n.raft.DemoteVoter(id, 0, to).Error())
	case voting.Remove:
		return mapRaftError(n.raft.RemoveServer(id, 0, to).Error())
	}
	return fmt.Errorf("unknown change %q", c.Action)
}

// planRemove returns the steps the voting policy needs to take name out
// (a witness promoted first when that keeps the voter count odd), or a
// *voting.QuorumError when the members still reachable would not form a
// quorum afterwards.
func (n *node) planRemove(ctx context.Context, name string) ([]voting.Change, []raft.Server, error) {
	view, servers, err := n.votingView(ctx)
	if err != nil {
		return nil, nil, err
	}
	plan, err := voting.PlanRemove(view, name)
	return plan, servers, err
}
