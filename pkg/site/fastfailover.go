package site

import (
	"errors"
	"fmt"

	"github.com/pgherd/pgherd/pkg/patroni"
)

// FastFailoverDetect checks patroni.dcs.embedded.fast_failover against the
// rest of the Patroni settings and returns its detect in seconds (derived
// from the timings when 0); 0 when it is off. Host-aware revocation is
// refused on an external etcd, which does not know which host each
// Patroni runs on, and without strict synchronous mode, which alone keeps
// a primary that is cut off (not dead) from acknowledging a commit once
// its synchronous standby has been promoted.
func (p *Patroni) FastFailoverDetect() (int, error) {
	ff := p.DCS.Embedded.FastFailover
	if !ff.Enabled {
		return 0, nil
	}
	const key = "patroni.dcs.embedded.fast_failover"
	switch {
	case p.DCS.Kind == DCSEtcd:
		return 0, fmt.Errorf("%s needs pgherd's embedded DCS, which knows the host beside each Patroni; patroni.dcs.kind is etcd: set fast_failover.enabled: false", key)
	case !p.SynchronousMode || !p.SynchronousModeStrict:
		return 0, fmt.Errorf("%s needs patroni.synchronous_mode and patroni.synchronous_mode_strict both true: without them a primary cut off from the DCS, not dead, keeps acknowledging commits that the promoted replica never saw; set both, or fast_failover.enabled: false", key)
	}
	t := patroni.Timings{TTL: p.TTL, LoopWait: p.LoopWait, RetryTimeout: p.RetryTimeout}
	d, err := patroni.FastFailoverBounds(t).CheckDetect(ff.Detect)
	if err != nil {
		return 0, fmt.Errorf("%s: %w (ttl %d, loop_wait %d, retry_timeout %d)", key, err, p.TTL, p.LoopWait, p.RetryTimeout)
	}
	return d, nil
}

// errStrictWithoutSync refuses synchronous_mode_strict alone, which
// Patroni would silently ignore.
var errStrictWithoutSync = errors.New("patroni.synchronous_mode_strict: true needs patroni.synchronous_mode: true as well (Patroni ignores it otherwise)")
