package site

import (
	"strings"
	"testing"
)

// fastSite is a site whose fast failover can arm: the fast timing
// profile, strict synchronous mode, the embedded DCS.
func fastSite() Settings {
	s := Defaults()
	s.Patroni.TTL, s.Patroni.LoopWait, s.Patroni.RetryTimeout = 10, 1, 3
	s.Patroni.SynchronousMode, s.Patroni.SynchronousModeStrict = true, true
	s.Patroni.DCS.Embedded.FastFailover.Enabled = true
	return s
}

func TestFastFailoverDetect(t *testing.T) {
	s := fastSite()
	if d, err := s.Patroni.FastFailoverDetect(); err != nil || d != 6 {
		t.Fatalf("derived detect: %d, %v; want 6 (retry_timeout 3 + demotion 1 + loop_wait 1, plus 1)", d, err)
	}
	s.Patroni.DCS.Embedded.FastFailover.Detect = 9
	if d, err := s.Patroni.FastFailoverDetect(); err != nil || d != 9 {
		t.Fatalf("detect 9: %d, %v", d, err)
	}
	off := Defaults()
	if d, err := off.Patroni.FastFailoverDetect(); err != nil || d != 0 {
		t.Fatalf("off: %d, %v; want 0, nil", d, err)
	}
}

func TestFastFailoverRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Patroni)
		want string
	}{
		{"external etcd", func(p *Patroni) { p.DCS.Kind = DCSEtcd }, "needs pgherd's embedded DCS"},
		{"asynchronous", func(p *Patroni) { p.SynchronousMode, p.SynchronousModeStrict = false, false }, "needs patroni.synchronous_mode and patroni.synchronous_mode_strict both true"},
		{"not strict", func(p *Patroni) { p.SynchronousModeStrict = false }, "needs patroni.synchronous_mode and patroni.synchronous_mode_strict both true"},
		{"detect too short", func(p *Patroni) { p.DCS.Embedded.FastFailover.Detect = 5 },
			"detect 5 s is out of bounds: it must exceed retry_timeout + 1 s of demotion + loop_wait (5 s) and stay below ttl (10 s)"},
		{"detect at the TTL", func(p *Patroni) { p.DCS.Embedded.FastFailover.Detect = 10 }, "stay below ttl (10 s)"},
		{"standard timings, derived detect", func(p *Patroni) { p.TTL, p.LoopWait, p.RetryTimeout = 30, 10, 10 }, ""},
	} {
		s := fastSite()
		tc.edit(&s.Patroni)
		_, err := s.Patroni.FastFailoverDetect()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		case err != nil && (strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "patroni.dcs.embedded.fast_failover")):
			t.Errorf("%s: %q is not one line naming the setting", tc.name, err)
		}
	}
}

func TestStrictWithoutSynchronousRefused(t *testing.T) {
	s := Defaults()
	s.Patroni.SynchronousModeStrict = true
	if err := s.Patroni.validate(); err != errStrictWithoutSync {
		t.Fatalf("got %v, want %v", err, errStrictWithoutSync)
	}
}
