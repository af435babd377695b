package patroni

import "testing"

func TestLeaderKey(t *testing.T) {
	for _, tc := range []struct{ ns, scope, want string }{
		{"", "ha", "/service/ha/leader"},
		{"/service", "ha", "/service/ha/leader"},
		{"/svc/", "main", "/svc/main/leader"},
		{"svc", "main", "/svc/main/leader"},
	} {
		if got := LeaderKey(tc.ns, tc.scope); got != tc.want {
			t.Errorf("LeaderKey(%q, %q) = %q, want %q", tc.ns, tc.scope, got, tc.want)
		}
	}
}

func TestFastFailoverBounds(t *testing.T) {
	b := FastFailoverBounds(Timings{TTL: 10, LoopWait: 1, RetryTimeout: 3})
	if b != (DetectBounds{Above: 5, Below: 10, Default: 6}) {
		t.Fatalf("fast: %+v", b)
	}
	for detect, ok := range map[int]bool{0: true, 5: false, 6: true, 9: true, 10: false} {
		if _, err := b.CheckDetect(detect); (err == nil) != ok {
			t.Errorf("detect %d: %v", detect, err)
		}
	}
	if b := FastFailoverBounds(DefaultTimings); b.Default != 22 || b.Below != 30 {
		t.Fatalf("standard: %+v", b)
	}
}
