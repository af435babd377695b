package server

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// TestCrashRestart SIGKILLs pgherd-dcs processes while clients write:
// members killed in the middle of appends and of compactions (a snapshot
// every few dozen entries), leaders killed, and a leader whose log tail
// conflicts with the next leader's (its followers are stopped while it
// appends, it is killed, the others commit over those indexes, and it is
// killed again soon after it restarts and truncates its tail: raft-wal
// v0.4.0 could never read such a log again). Every member must come back;
// at the end the members are stopped and each one's state rebuilt from its
// data directory alone, up to the index all had applied, must be the same,
// with every acknowledged write.
func TestCrashRestart(t *testing.T) {
	c := newProcCluster(t, 3, func(cfg *dcs.Config) {
		cfg.SnapshotThreshold, cfg.TrailingLogs, cfg.SnapshotInterval = 48, 16, 100*time.Millisecond
	})
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	jitter := func(min, max int) { time.Sleep(time.Duration(min+rng.Intn(max-min)) * time.Millisecond) }

	ctx, stopWriters := context.WithCancel(context.Background())
	defer stopWriters()
	var mu sync.Mutex
	acked := map[string]string{}
	var wg sync.WaitGroup
	for w := range 4 {
		cl := c.client()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ctx.Err() == nil; seq++ {
				k, v := fmt.Sprintf("/crash/%d/%05d", w, seq), fmt.Sprint(seq)
				octx, cancel := context.WithTimeout(ctx, time.Second)
				_, err := cl.Put(octx, k, v)
				cancel()
				if err == nil {
					mu.Lock()
					acked[k] = v
					mu.Unlock()
				}
			}
		}()
	}

	start := time.Now()
	for round := 0; time.Since(start) < 20*time.Second; round++ {
		switch round % 3 {
		case 0: // any member, in the middle of appends and snapshots
			i := rng.Intn(len(c.members))
			jitter(50, 500)
			c.kill(i)
			jitter(50, 400)
			c.start(i)
		case 1: // the leader
			l := c.leader()
			jitter(50, 300)
			c.kill(l)
			jitter(200, 800)
			c.start(l)
		case 2: // a leader whose tail the next leader overwrites
			l := c.leader()
			for i := range c.members {
				if i != l {
					c.pause(i)
				}
			}
			lcl := c.client("http://" + c.members[l].cfg.ListenClient)
			for j := range 16 { // appended by the leader only, never committed
				go func() {
					octx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
					defer cancel()
					lcl.Put(octx, fmt.Sprintf("/conflict/%d/%d", round, j), "lost")
				}()
			}
			jitter(100, 200)
			c.kill(l)
			for i := range c.members {
				c.resume(i)
			}
			c.leader()
			jitter(300, 600) // the new leader commits over those indexes
			c.start(l)       // its log conflicts: raft truncates its tail
			jitter(50, 400)
			c.kill(l)
			c.start(l)
		}
	}
	stopWriters()
	wg.Wait()
	c.waitCaughtUp(20 * time.Second)
	cl := c.client()
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.Put(fctx, "/crash/final", "x"); err != nil {
		t.Fatalf("a write after the crashes: %v", err)
	}
	// Entries may follow (a timed-out put that reached the leader late, a
	// new leader's own): compare the logs up to what all have applied.
	upTo := c.waitCaughtUp(20 * time.Second)

	truncations := 0
	for i := range c.members {
		c.stop(i)
		raw, _ := os.ReadFile(c.members[i].log)
		truncations += strings.Count(string(raw), "clearing log suffix")
	}
	if truncations == 0 {
		t.Errorf("no member truncated a conflicting log tail: the test did not exercise truncation")
	}
	var want []string
	snapped := false
	for i, m := range c.members {
		f, snapIndex := durableState(t, m.cfg.DataDir, upTo)
		got := allKVs(f)
		snapped = snapped || snapIndex > 0
		if i == 0 {
			want = got
			for k, v := range acked {
				if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, k+"="+v+"@") }) {
					t.Errorf("acknowledged write %s=%s is lost", k, v)
				}
			}
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s's state (%d keys) differs from %s's (%d keys): only in %[1]s %v, only in %[3]s %v", m.cfg.Name, len(got), c.members[0].cfg.Name, len(want),
				firstMissing(want, got), firstMissing(got, want))
		}
	}
	if !snapped {
		t.Errorf("no member took a snapshot: the test did not exercise compaction")
	}
	t.Logf("%d acknowledged writes, %d keys, %d tail truncations, %s", len(acked), len(want), truncations, time.Since(start).Round(time.Second))
}

// firstMissing lists up to 5 entries of a that b lacks.
func firstMissing(b, a []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) && len(out) < 5 {
			out = append(out, x)
		}
	}
	return out
}
