package supervise

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestFenceDeadline: the fence fires before the earliest expiry of the
// leader key (death - LoopWait + TTL) by at least the margin, and follows
// shorter timings.
func TestFenceDeadline(t *testing.T) {
	died := time.Unix(1000, 0)
	for _, c := range []struct {
		ttl, loop, want time.Duration
	}{
		{30 * time.Second, 10 * time.Second, 15 * time.Second},        // margin 5 s
		{20 * time.Second, 2 * time.Second, 13500 * time.Millisecond}, // margin 4.5 s
		{10 * time.Second, 5 * time.Second, 3 * time.Second},          // margin floor 2 s
	} {
		f := &Fence{TTL: c.ttl, LoopWait: c.loop}
		got := f.Deadline(died).Sub(died)
		if got != c.want {
			t.Errorf("ttl %s loop_wait %s: deadline %s after the death, want %s", c.ttl, c.loop, got, c.want)
		}
		if expiry := c.ttl - c.loop; expiry-got < 2*time.Second {
			t.Errorf("ttl %s loop_wait %s: margin %s before the key can expire", c.ttl, c.loop, expiry-got)
		}
	}
}

// TestPrimary: a data directory counts as a primary only with a live
// postmaster.pid and no standby.signal or recovery.signal.
func TestPrimary(t *testing.T) {
	dir := t.TempDir()
	if _, ok := Primary(dir); ok {
		t.Error("no postmaster.pid: a primary")
	}
	os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"+dir+"\n"), 0o600)
	if pid, ok := Primary(dir); !ok || pid != os.Getpid() {
		t.Errorf("live postmaster.pid: %d, %v", pid, ok)
	}
	os.WriteFile(filepath.Join(dir, "standby.signal"), nil, 0o600)
	if _, ok := Primary(dir); ok {
		t.Error("standby.signal: a primary")
	}
	os.Remove(filepath.Join(dir, "standby.signal"))
	// The account that owns the data directory writes postmaster.pid: a
	// PID of another user's (here the test's own, as the directory now
	// belongs to nobody) is not its server, and a fence never signals it.
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, ok := Primary(dir); ok {
			t.Error("another user's PID in postmaster.pid: a primary")
		}
		os.Chown(dir, 0, 0)
	}
	os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte("999999999\n"), 0o600)
	if _, ok := Primary(dir); ok {
		t.Error("a dead PID: a primary")
	}
}

// TestSpecCheck refuses specs a supervisor could not run.
func TestSpecCheck(t *testing.T) {
	good := Spec{Name: "x", Exec: []string{"/bin/true"}, PIDFile: "a", StateFile: "b", SupervisorPIDFile: "c",
		Policy: Policy{Delay: time.Second, MaxDelay: time.Second, MaxTries: 1}}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Spec){
		"relative program": func(s *Spec) { s.Exec = []string{"true"} },
		"no tries":         func(s *Spec) { s.Policy.MaxTries = 0 },
		"ttl <= loop_wait": func(s *Spec) { s.Fence = &Fence{PgCtl: "/p", DataDir: "/d", TTL: time.Second, LoopWait: time.Second} },
	} {
		s := good
		mutate(&s)
		if s.Check() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
