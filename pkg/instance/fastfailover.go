package instance

import (
	"context"

	"github.com/pgherd/pgherd/pkg/patroni"
)

// FastFailover says whether host-aware revocation is armed for Patroni
// member i (configuration cfg, REST client c): whether the DCS member set
// up beside it on this host declares it (patroni.dcs.embedded.fast_failover
// when the instance was created), and whether the cluster runs strict
// synchronous mode.
func FastFailover(ctx context.Context, env *Env, i *Instance, cfg *patroni.Config, c *patroni.Client) patroni.FastFailoverInfo {
	detect := 0
	if name, err := dcsMemberOf(env, i, cfg.Name); err == nil && name != "" {
		if local, err := memberEnv(env).LocalMembers(); err == nil {
			for _, m := range local {
				if m.Name == name && m.FastFailover.Armed() {
					detect = int(m.FastFailover.Detect.Seconds())
				}
			}
		}
	}
	return patroni.FastFailoverState(ctx, cfg, c, detect)
}
