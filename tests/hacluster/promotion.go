package hacluster

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// MeasurePromotion kills the primary's host and times the other node's
// promotion (pg_is_in_recovery() false), polling every 100 ms, within
// limit. It is MeasureFailover for strict synchronous mode, where the
// promoted node of a two-node cluster takes no commit until a synchronous
// standby is back. cut, when not nil, runs first (taking the host off the
// network, so that its peers see no reset of their connections, as when a
// host dies).
func (c *Cluster) MeasurePromotion(ctx context.Context, limit time.Duration, cut func(old *Node) error) (*Failover, error) {
	old, err := c.Primary(ctx)
	if err != nil {
		return nil, err
	}
	f := &Failover{Old: old, New: c.Other(old)}
	if l, err := c.DCSLeader(ctx); err == nil && c.Opts.DCS == DCSPgherd {
		f.DCSLeaderDied = l == old.Name
	}
	start := time.Now()
	if cut != nil {
		if err := cut(old); err != nil {
			return f, err
		}
	}
	c.KillHost(old)
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	err = poll(wctx, 100*time.Millisecond, func() error {
		rec, err := c.InRecovery(wctx, f.New)
		if err == nil && rec {
			return fmt.Errorf("%s is still in recovery", f.New.Name)
		}
		return err
	})
	if err != nil {
		return f, fmt.Errorf("%w within %s: %v", ErrNoFailover, limit, err)
	}
	f.RTO = time.Since(start)
	return f, nil
}

// StartDCSMember starts node n's DCS member again after the test killed
// it (n.DCS.Kill), with its data.
func (c *Cluster) StartDCSMember(n *Node) error { return c.startMember(n) }

// DCSLogs are the log files of the DCS members (DCSPgherd).
func (c *Cluster) DCSLogs() []string {
	var logs []string
	for _, n := range c.Nodes {
		if n.dcsYAML != "" {
			logs = append(logs, filepath.Join(filepath.Dir(n.dcsYAML), "member.log"))
		}
	}
	if c.witnessLog != "" {
		logs = append(logs, c.witnessLog)
	}
	return logs
}
