package ha

import (
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/patroni"
	"github.com/pgherd/pgherd/tests/hacluster"
)

// failoverBound is the promotion bound docs/ha-witness.md states for a
// host's death at timings t: the dead primary's lease outlives it by at
// most ttl; the replica, told of the key's deletion by its watch, asks the
// dead member's REST API (Patroni 3.0.2 gives up after 2 s) in a loop that
// may start up to loop_wait late; then 5 s to promote and commit on a
// loaded host.
func failoverBound(t patroni.Timings) time.Duration {
	return time.Duration(t.TTL+2+t.LoopWait+5) * time.Second
}

// TestHostDeathWithinBound kills the primary's host at each timing
// profile, with a writer committing every 50 ms in synchronous mode: the
// replica must take writes within failoverBound, with every acknowledged
// row.
func TestHostDeathWithinBound(t *testing.T) {
	cred := needReal(t)
	for _, name := range patroni.TimingProfileNames() {
		t.Run(name, func(t *testing.T) {
			tm, err := patroni.TimingProfile(name)
			if err != nil {
				t.Fatal(err)
			}
			ctx := ctxT(t, 6*time.Minute)
			c := startCluster(t, ctx, hacluster.Options{Base: baseDir(t), Pgherd: pgherdBin, Cred: cred, DCS: hacluster.DCSPgherd,
				Timings: tm, SynchronousMode: true})
			bound := failoverBound(tm)
			f := primaryHostLoss(t, ctx, c, bound)
			t.Logf("%s profile (ttl %d / loop_wait %d / retry_timeout %d): promoted in %s, bound %s",
				name, tm.TTL, tm.LoopWait, tm.RetryTimeout, f.RTO.Round(10*time.Millisecond), bound)
		})
	}
}
