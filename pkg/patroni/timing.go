package patroni

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Timing profiles (site.yaml patroni.timing). Their values and what each
// survives are measured: docs/ha-witness.md, "Timing profiles".
const (
	// ProfileStandard is Patroni's own defaults: a host's death costs
	// about a TTL, 30 s.
	ProfileStandard = "standard"
	// ProfileFast, pgherd's default, is the shortest timings pgherd allows
	// (MinTTL with the smallest loop_wait and retry_timeout); the soak
	// (tests/ha TestSoakNoFalseFailover) found no false failover at them.
	ProfileFast = "fast"
	// ProfileCustom names timings that match no profile.
	ProfileCustom = "custom"
)

// timingProfiles maps each profile's name to its timings.
var timingProfiles = map[string]Timings{
	ProfileStandard: DefaultTimings,
	ProfileFast:     {TTL: 10, LoopWait: 1, RetryTimeout: 3},
}

// TimingProfile returns the timings of the named profile; an unknown name
// is refused with the list of profiles.
func TimingProfile(name string) (Timings, error) {
	if t, ok := timingProfiles[name]; ok {
		return t, nil
	}
	return Timings{}, fmt.Errorf("timing profile %q is unknown: use one of %s", name, strings.Join(TimingProfileNames(), ", "))
}

// TimingProfileNames lists the profiles, sorted.
func TimingProfileNames() []string {
	return slices.Sorted(maps.Keys(timingProfiles))
}

// ProfileOf names the profile whose timings are exactly t, or
// ProfileCustom.
func ProfileOf(t Timings) string {
	for _, n := range TimingProfileNames() {
		if timingProfiles[n] == t {
			return n
		}
	}
	return ProfileCustom
}

// Where a TimingInfo was read.
const (
	// TimingFromCluster is the cluster's dynamic configuration (Patroni's
	// GET /config): the timings every member runs with.
	TimingFromCluster = "cluster"
	// TimingFromBootstrap is the member's YAML (bootstrap.dcs), read when
	// Patroni's REST API does not answer: what the cluster was created
	// with, unless its configuration was edited since.
	TimingFromBootstrap = "bootstrap"
)

// TimingInfo is a cluster's timing profile as -o json shows it.
type TimingInfo struct {
	// Profile is the profile whose timings these are exactly, or custom.
	Profile      string `json:"profile"`
	TTL          int    `json:"ttl"`
	LoopWait     int    `json:"loop_wait"`
	RetryTimeout int    `json:"retry_timeout"`
	// Source says where they were read: cluster or bootstrap.
	Source string `json:"source"`
}

// Info returns t as a TimingInfo read from source.
func (t Timings) Info(source string) TimingInfo {
	return TimingInfo{Profile: ProfileOf(t), TTL: t.TTL, LoopWait: t.LoopWait, RetryTimeout: t.RetryTimeout, Source: source}
}

// String is "fast (ttl 10 s, loop_wait 1 s, retry_timeout 3 s)".
func (i TimingInfo) String() string {
	return fmt.Sprintf("%s (ttl %d s, loop_wait %d s, retry_timeout %d s)", i.Profile, i.TTL, i.LoopWait, i.RetryTimeout)
}

// Timing reads the cluster's timings from its dynamic configuration.
func (c *Client) Timing(ctx context.Context) (TimingInfo, error) {
	cfg, err := c.Config(ctx)
	if err != nil {
		return TimingInfo{}, err
	}
	t, err := ConfigTimings(cfg)
	if err != nil {
		return TimingInfo{}, err
	}
	return t.Info(TimingFromCluster), nil
}

// ConfigTimings returns the timings of a dynamic configuration as GET
// /config gives it (numbers as JSON numbers); a timing it does not set is
// Patroni's default, as Patroni applies it.
func ConfigTimings(cfg map[string]any) (Timings, error) {
	t := DefaultTimings
	for key, v := range map[string]*int{"ttl": &t.TTL, "loop_wait": &t.LoopWait, "retry_timeout": &t.RetryTimeout} {
		switch n := cfg[key].(type) {
		case float64:
			if n != float64(int(n)) {
				return t, fmt.Errorf("%s %v is not a whole number of seconds", key, n)
			}
			*v = int(n)
		case nil:
		default:
			return t, fmt.Errorf("%s %v is not a number of seconds", key, n)
		}
	}
	return t, nil
}

// ClusterTiming returns the cluster's timings, from the REST API of client
// or, when it does not answer, from c's bootstrap section (with the
// error).
func ClusterTiming(ctx context.Context, c *Config, client *Client) (TimingInfo, error) {
	ti, err := client.Timing(ctx)
	if err == nil {
		return ti, nil
	}
	// A timing the YAML leaves out is Patroni's default, as for GET /config.
	t, d := DefaultTimings, c.Bootstrap.DCS
	for _, v := range [][2]*int{{&t.TTL, &d.TTL}, {&t.LoopWait, &d.LoopWait}, {&t.RetryTimeout, &d.RetryTimeout}} {
		if *v[1] > 0 {
			*v[0] = *v[1]
		}
	}
	return t.Info(TimingFromBootstrap), err
}
