package patroni

import (
	"context"
	"testing"
)

func TestConfigTimings(t *testing.T) {
	tm, err := ConfigTimings(map[string]any{"ttl": 10.0, "loop_wait": 1.0})
	if err != nil || tm != (Timings{10, 1, 10}) {
		t.Errorf("ttl and loop_wait set: %+v, %v; want 10/1/10 (Patroni's default retry_timeout)", tm, err)
	}
	if _, err := ConfigTimings(map[string]any{"ttl": "ten"}); err == nil || err.Error() != "ttl ten is not a number of seconds" {
		t.Errorf("a string: %v", err)
	}
	if _, err := ConfigTimings(map[string]any{"loop_wait": 1.5}); err == nil || err.Error() != "loop_wait 1.5 is not a whole number of seconds" {
		t.Errorf("a fraction: %v", err)
	}
}

func TestTimingProfiles(t *testing.T) {
	for _, name := range TimingProfileNames() {
		tm, err := TimingProfile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidateTimings(tm); err != nil {
			t.Errorf("profile %s breaks the timing rules: %v", name, err)
		}
		if got := ProfileOf(tm); got != name {
			t.Errorf("ProfileOf(%+v) = %s, want %s", tm, got, name)
		}
	}
	if tm, _ := TimingProfile(ProfileStandard); tm != DefaultTimings {
		t.Errorf("standard is %+v, want Patroni's defaults %+v", tm, DefaultTimings)
	}
	if got := ProfileOf(Timings{20, 2, 5}); got != ProfileCustom {
		t.Errorf("ProfileOf(20/2/5) = %s, want custom", got)
	}
	_, err := TimingProfile("quick")
	if err == nil || err.Error() != `timing profile "quick" is unknown: use one of fast, standard` {
		t.Errorf("unknown profile: %v", err)
	}
}

func TestClusterTimingFallsBackToBootstrap(t *testing.T) {
	c := New(goldenSpec())
	c.Bootstrap.DCS.TTL, c.Bootstrap.DCS.LoopWait, c.Bootstrap.DCS.RetryTimeout = 10, 1, 0
	client, err := NewClient(ClientConfig{URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	ti, err := ClusterTiming(context.Background(), c, client)
	if err == nil {
		t.Fatal("no error from a REST API that does not answer")
	}
	if want := (TimingInfo{Profile: ProfileCustom, TTL: 10, LoopWait: 1, RetryTimeout: 10, Source: TimingFromBootstrap}); ti != want {
		t.Errorf("got %+v, want %+v", ti, want)
	}
}
