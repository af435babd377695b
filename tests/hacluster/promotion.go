package hacluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	if err := c.WaitPromoted(wctx, f.New); err != nil {
		return f, fmt.Errorf("%w within %s: %v", ErrNoFailover, limit, err)
	}
	f.RTO = time.Since(start)
	return f, nil
}

// WaitPromoted polls n every 100 ms until it is out of recovery.
func (c *Cluster) WaitPromoted(ctx context.Context, n *Node) error {
	return poll(ctx, 100*time.Millisecond, func() error {
		rec, err := c.InRecovery(ctx, n)
		if err == nil && rec {
			return fmt.Errorf("%s is still in recovery", n.Name)
		}
		return err
	})
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

// FreezeHost SIGSTOPs everything of node n: its Patroni, its DCS member,
// the postmaster and every process the postmaster started. The returned
// function sends SIGCONT to the same processes (safe to call twice).
func (c *Cluster) FreezeHost(n *Node) (resume func(), err error) {
	pids := []int{n.Patroni.PID()}
	if n.DCS != nil {
		pids = append(pids, n.DCS.PID())
	}
	if pm := postmasterPID(n.DataDir); pm > 0 {
		pids = append(pids, pm)
		pids = append(pids, childrenOf(pm)...)
	}
	var stopped []int
	resume = func() {
		for _, pid := range stopped {
			syscall.Kill(pid, syscall.SIGCONT)
		}
		stopped = nil
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			resume()
			return func() {}, fmt.Errorf("freeze %s: pid %d: %w", n.Name, pid, err)
		}
		stopped = append(stopped, pid)
	}
	return resume, nil
}

// childrenOf lists the processes whose parent is pid (from /proc).
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}
