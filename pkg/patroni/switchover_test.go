package patroni

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckSwitchover(t *testing.T) {
	running := Cluster{Members: []Member{
		{Name: "pg1", Role: "leader", State: "running"},
		{Name: "pg2", Role: "replica", State: "running"},
		{Name: "pg3", Role: "replica", State: "stopped"},
	}}
	paused := running
	paused.Pause = true
	leaderless := Cluster{Members: []Member{{Name: "pg2", Role: "replica", State: "running"}}}
	for _, c := range []struct {
		cl                *Cluster
		leader, candidate string
		want              string // "" : accepted
	}{
		{&running, "", "", ""},
		{&running, "", "pg2", ""},
		{&running, "pg1", "pg2", ""},
		{&running, "pg2", "", "refused: pg2 is not the leader of cluster main (pg1 is)"},
		{&running, "", "pg9", "refused: cluster main has no member pg9 (members: pg1, pg2, pg3)"},
		{&running, "", "pg1", "refused: pg1 already leads cluster main: choose a replica (eligible: pg2)"},
		{&running, "", "pg3", "refused: member pg3 is stopped, not a running replica: it cannot take over (eligible: pg2)"},
		{&paused, "", "", "refused: cluster main is paused: name the new leader with --candidate (eligible: pg2)"},
		{&paused, "", "pg2", ""},
		{&leaderless, "", "pg2", "refused: cluster main has no leader to switch over from: use 'pgherd patroni failover' with --candidate"},
	} {
		err := c.cl.CheckSwitchover("main", c.leader, c.candidate)
		if got := errString(err); got != c.want {
			t.Errorf("CheckSwitchover(%q, %q) = %q, want %q", c.leader, c.candidate, got, c.want)
		}
		if err != nil && !errors.Is(err, ErrRefused) {
			t.Errorf("%v is not ErrRefused", err)
		}
	}
	if got := errString(running.CheckReinit("main", "pg1")); got != "refused: pg1 leads cluster main, and reinit rebuilds a replica from the leader: switch over first ('pgherd patroni switchover' with --candidate; eligible: pg2)" {
		t.Errorf("reinit of the leader: %q", got)
	}
	if err := running.CheckReinit("main", "pg2"); err != nil {
		t.Errorf("reinit of a replica: %v", err)
	}
	if err := leaderless.CheckFailover("main", "pg2"); err != nil {
		t.Errorf("failover to a running replica without a leader: %v", err)
	}
}

func TestExplainRefusal(t *testing.T) {
	err := ExplainRefusal(&StatusError{Method: "POST", Path: "/switchover", Code: 503, Body: "Switchover failed"}, "switchover", "main", "pg2", "pg1")
	if got := err.Error(); !strings.HasPrefix(got, "switchover of cluster main to pg2 failed: the candidate did not take over in time") || strings.Contains(got, "503") {
		t.Errorf("503: %s", got)
	}
	err = ExplainRefusal(&StatusError{Method: "POST", Path: "/failover", Code: 412, Body: "candidate does not exists"}, "failover", "main", "pgx", "pg1")
	if got := err.Error(); got != "failover of cluster main refused by Patroni: candidate does not exists; see 'pgherd patroni list'" {
		t.Errorf("412: %s", got)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
