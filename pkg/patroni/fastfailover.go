package patroni

import (
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
