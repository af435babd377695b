package hacluster

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PatroniDCSEndpoint returns the DCS client endpoint (HOST:PORT) that node
// n's Patroni uses now: the last "Selected new etcd server" its log shows.
// Patroni 3.0.2 picks it at random from the DCS's member list at start and
// changes it only when a request to it fails with a transport error.
func (c *Cluster) PatroniDCSEndpoint(n *Node) (string, error) {
	b, err := os.ReadFile(filepath.Join(n.Dir, "log", "patroni.log"))
	if err != nil {
		return "", err
	}
	const mark = "Selected new etcd server "
	s := string(b)
	i := strings.LastIndex(s, mark)
	if i < 0 {
		return "", fmt.Errorf("%s's Patroni log names no etcd server yet", n.Name)
	}
	line, _, _ := strings.Cut(s[i+len(mark):], "\n")
	u, err := url.Parse(strings.TrimSpace(line))
	if err != nil {
		return "", fmt.Errorf("%s's Patroni log: %w", n.Name, err)
	}
	return u.Host, nil
}

// UseOwnDCSMember makes node n's Patroni use the DCS member of its own
// host (DCSPgherd): while it uses another one, that member is killed
// until Patroni has selected another endpoint, then started again and the
// DCS waited for. Patroni shuffles its member list at each change, so each
// round lands on n's member with even odds.
func (c *Cluster) UseOwnDCSMember(ctx context.Context, n *Node) error {
	own := -1
	for i, m := range c.Nodes {
		if m == n {
			own = i // DCSClients are n1's, n2's, then the witness's
		}
	}
	if c.Opts.DCS != DCSPgherd || own < 0 {
		return fmt.Errorf("%s has no DCS member of its own", n.Name)
	}
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s's Patroni did not come to its own DCS member: %w", n.Name, err)
		}
		ep, err := c.PatroniDCSEndpoint(n)
		if err != nil {
			return err
		}
		if ep == c.DCSClients[own] {
			return nil
		}
		kill, start := c.Witness.Kill, c.StartWitness
		for i, m := range c.Nodes {
			if ep == c.DCSClients[i] {
				kill, start = m.DCS.Kill, func() error { return c.startMember(m) }
			}
		}
		kill()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = poll(wctx, 200*time.Millisecond, func() error {
			now, err := c.PatroniDCSEndpoint(n)
			if err == nil && now == ep {
				err = fmt.Errorf("%s's Patroni still uses %s", n.Name, ep)
			}
			return err
		})
		cancel()
		if serr := start(); err == nil {
			err = serr
		}
		if err != nil {
			return err
		}
		if err := c.WaitDCSHealthy(ctx, time.Minute); err != nil {
			return err
		}
	}
}
