package patroni

import (
	"context"
	"fmt"
	"path"
)

// DemotionAllowance is the time, in seconds, allowed for a primary that
// lost the DCS to stop taking writes once its DCS calls have failed for
// retry_timeout: Patroni 3.0.2 then demotes (a fast shutdown, then a start
// as a replica); the shutdown ends the writes.
const DemotionAllowance = 1

// DetectBounds are the detect values, in seconds, host-aware revocation
// accepts for timings t: above retry_timeout + DemotionAllowance +
// loop_wait (a loop overrun), so that an isolated primary has stopped
// by itself before its lease is revoked; below ttl, else the TTL expires
// first and the rule never acts. Default is the lower bound plus one.
type DetectBounds struct {
	Above, Below, Default int
}

// FastFailoverBounds returns the detect bounds for timings t.
func FastFailoverBounds(t Timings) DetectBounds {
	above := t.RetryTimeout + DemotionAllowance + t.LoopWait
	return DetectBounds{Above: above, Below: t.TTL, Default: above + 1}
}

// CheckDetect returns detect, or the default for 0, and refuses a value
// outside the bounds, naming them.
func (b DetectBounds) CheckDetect(detect int) (int, error) {
	if detect == 0 {
		detect = b.Default
	}
	if detect <= b.Above || detect >= b.Below {
		return 0, fmt.Errorf("detect %d s is out of bounds: it must exceed retry_timeout + %d s of demotion + loop_wait (%d s) and stay below ttl (%d s)",
			detect, DemotionAllowance, b.Above, b.Below)
	}
	return detect, nil
}

// LeaderKey is Patroni 3.0.2's leader key of cluster scope under
// namespace ("" means /service): /NAMESPACE/SCOPE/leader.
func LeaderKey(namespace, scope string) string {
	if namespace == "" {
		namespace = "/service"
	}
	return path.Join("/", namespace, scope, "leader")
}

// FastFailoverInfo says whether host-aware revocation is armed for a
// member (`instance get -o json`, `patroni list`): its DCS member declares
// the rule and the cluster runs strict synchronous mode.
type FastFailoverInfo struct {
	Armed bool `json:"armed"`
	// DetectS is the declared detect in seconds; 0 when none is declared.
	DetectS int `json:"detect_s"`
	// Why says what keeps it from being armed; empty when armed.
	Why string `json:"why,omitempty"`
}

// String is "armed (detect 6 s)" or "off (why)".
func (f FastFailoverInfo) String() string {
	if f.Armed {
		return fmt.Sprintf("armed (detect %d s)", f.DetectS)
	}
	return "off (" + f.Why + ")"
}

// FastFailoverState is the FastFailoverInfo of a member whose DCS member
// declares detectS (0: declares nothing), with the cluster's synchronous
// modes read from the REST API of client or, when it does not answer,
// from c's bootstrap section.
func FastFailoverState(ctx context.Context, c *Config, client *Client, detectS int) FastFailoverInfo {
	in := FastFailoverInfo{DetectS: detectS}
	if detectS == 0 {
		in.Why = "its DCS member was set up without fast_failover"
		return in
	}
	sync, strict := c.Bootstrap.DCS.SynchronousMode, c.Bootstrap.DCS.SynchronousModeStrict
	if cfg, err := client.Config(ctx); err == nil {
		sync, _ = cfg["synchronous_mode"].(bool)
		strict, _ = cfg["synchronous_mode_strict"].(bool)
	}
	if !sync || !strict {
		in.Why = "the cluster does not run synchronous_mode and synchronous_mode_strict"
		return in
	}
	in.Armed = true
	return in
}
