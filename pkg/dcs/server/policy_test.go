package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// suffrages returns name → "voter"|"nonvoter" as the leader reports them.
func (c *testCluster) suffrages() map[string]string {
	c.t.Helper()
	ms, err := c.servers[c.leader()].node.members(context.Background())
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, m := range ms {
		out[m.Name] = m.Suffrage
	}
	return out
}

func (c *testCluster) waitSuffrages(want map[string]string) {
	c.t.Helper()
	var got map[string]string
	waitFor(c.t, 20*time.Second, "suffrages "+fmtMap(want), func() bool {
		got = c.suffrages()
		return fmtMap(got) == fmtMap(want)
	})
}

func fmtMap(m map[string]string) string {
	var b strings.Builder
	for _, k := range []string{"m0", "m1", "m2", "w", "w2"} {
		if v, ok := m[k]; ok {
			b.WriteString(k + "=" + v + " ")
		}
	}
	return b.String()
}

// TestWitnessVotingPolicy runs the policy on a real cluster: the witness
// votes beside two data members, steps down when a third joins, is
// promoted again before that third one leaves, a second witness never
// votes, and a removal that would lose the quorum is refused.
func TestWitnessVotingPolicy(t *testing.T) {
	c := newCluster(t, 2, nil)
	witness := func(name string) {
		cfg := memberConfig(t, name)
		cfg.Role, cfg.Join = dcs.RoleWitness, []string{c.servers[0].PeerAddr()}
		c.add(cfg)
	}
	witness("w")
	c.waitSuffrages(map[string]string{"m0": "voter", "m1": "voter", "w": "voter"})

	cfg := memberConfig(t, "m2")
	cfg.Join = []string{c.servers[0].PeerAddr()}
	c.add(cfg)
	c.waitSuffrages(map[string]string{"m0": "voter", "m1": "voter", "m2": "voter", "w": "nonvoter"})

	ctx := ctxT(t, 60*time.Second)
	ac, err := dcs.NewAdminClient(c.servers[0].PeerAddr(), dcs.TLSConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if err := ac.Leave(ctx, "m2"); err != nil {
		t.Fatal(err)
	}
	c.stop(3)
	c.waitSuffrages(map[string]string{"m0": "voter", "m1": "voter", "w": "voter"})

	witness("w2")
	c.waitSuffrages(map[string]string{"m0": "voter", "m1": "voter", "w": "voter", "w2": "nonvoter"})
	if err := ac.Leave(ctx, "w2"); err != nil {
		t.Fatal(err)
	}
	c.stop(4)

	// With the witness down, removing a data member would leave one
	// reachable voter of two.
	c.stop(2)
	err = ac.Leave(ctx, "m1")
	if err == nil || !strings.Contains(err.Error(), "1 reachable voters of 2") {
		t.Fatalf("removal without quorum: want a refusal with both counts, got %v", err)
	}
	if got := c.suffrages(); got["m1"] != "voter" {
		t.Fatalf("m1 after the refused removal: %v", got)
	}
}
