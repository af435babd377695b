package ha

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pgherd/pgherd/tests/hacluster"
)

// splitBrainChecker asks both nodes every 100 ms, in parallel, whether
// they are out of recovery (a writable primary), and counts the rounds in
// which both were.
type splitBrainChecker struct {
	c              *hacluster.Cluster
	rounds, double int
	stop, done     chan struct{}
}

func startChecker(c *hacluster.Cluster) *splitBrainChecker {
	k := &splitBrainChecker{c: c, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(k.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-k.stop:
				return
			case <-tick.C:
			}
			var wg sync.WaitGroup
			primary := make([]bool, len(c.Nodes))
			for i, n := range c.Nodes {
				wg.Add(1)
				go func(i int, n *hacluster.Node) {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 90*time.Millisecond)
					defer cancel()
					rec, err := c.InRecovery(ctx, n)
					primary[i] = err == nil && !rec
				}(i, n)
			}
			wg.Wait()
			k.rounds++
			if primary[0] && primary[1] {
				k.double++
			}
		}
	}()
	return k
}

func (k *splitBrainChecker) Stop() { close(k.stop); <-k.done }

// threeHosts makes hosts n1, n2 and w in network namespaces named after
// prefix and this process, deleted when the test ends.
func threeHosts(t *testing.T, prefix string) (*hacluster.Netns, [3]hacluster.Host) {
	t.Helper()
	nw, err := hacluster.NewNetns(fmt.Sprintf("%s%d", prefix, os.Getpid()%100000), []string{"n1", "n2", "w"})
	t.Cleanup(nw.Close)
	if err != nil {
		t.Fatal(err)
	}
	var hosts [3]hacluster.Host
	copy(hosts[:], nw.Hosts)
	return nw, hosts
}

// TestPartition is case e: three hosts in network namespaces joined by a
// bridge; the primary's host is cut off. It demotes, the other node is
// promoted, and the checker never sees two primaries; once healed the old
// primary rejoins as a replica.
func TestPartition(t *testing.T) {
	cred := needReal(t)
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	ctx := ctxT(t, 6*time.Minute)
	nw, hosts := threeHosts(t, "ph")
	c := startCluster(t, ctx, hacluster.Options{Base: baseDir(t), Pgherd: pgherdBin, Cred: cred, DCS: hacluster.DCSPgherd,
		Timings: timings, Hosts: hosts})

	prim, err := c.Primary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := c.Other(prim)
	idx := 0
	if prim.Name == nw.Hosts[1].Name {
		idx = 1
	}
	k := startChecker(c)
	defer k.Stop()
	time.Sleep(time.Second)
	start := time.Now()
	if err := nw.Cut(idx); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if _, err := c.WaitWritable(pctx, other, 200*time.Millisecond); err != nil {
		t.Fatalf("%s was not promoted after %s cut off: %v", other.Name, prim.Name, err)
	}
	t.Logf("%s promoted %s after the cut", other.Name, time.Since(start).Round(100*time.Millisecond))
	if rec, err := c.InRecovery(ctx, prim); err == nil && !rec {
		t.Fatalf("the isolated %s is still a primary after %s was promoted", prim.Name, other.Name)
	}

	if err := nw.Heal(idx); err != nil {
		t.Fatal(err)
	}
	hctx, cancel2 := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel2()
	if err := c.WaitHealthy(hctx); err != nil {
		t.Fatalf("after healing: %v", err)
	}
	if rec, err := c.InRecovery(ctx, prim); err != nil || !rec {
		t.Fatalf("old primary %s after healing: in recovery %v, %v", prim.Name, rec, err)
	}
	k.Stop()
	k.stop = make(chan struct{}) // the deferred Stop has nothing left to do
	k.done = make(chan struct{})
	close(k.done)
	if k.double > 0 {
		t.Fatalf("two writable primaries in %d of %d checks", k.double, k.rounds)
	}
	t.Logf("%d checks, never two primaries", k.rounds)
}
