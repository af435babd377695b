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
		detect = declaredDetect(env, name)
	}
	return patroni.FastFailoverState(ctx, cfg, c, detect)
}

// declaredDetect is the detect, in seconds, that DCS member name on this
// host declares for host-aware revocation; 0 when it declares none, or
// this host's members cannot be read.
func declaredDetect(env *Env, name string) int {
	me, err := memberEnv(env)
	if err != nil {
		return 0
	}
	local, err := me.LocalMembers()
	if err != nil {
		return 0
	}
	for _, m := range local {
		if m.Name == name && m.FastFailover.Armed() {
			return int(m.FastFailover.Detect.Seconds())
		}
	}
	return 0
}
