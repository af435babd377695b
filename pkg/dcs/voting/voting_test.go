package voting

import (
	"errors"
	"strings"
	"testing"
)

// up returns a reachable, caught-up member; the name's first letter gives
// the role (d: data, w: witness), and voter its suffrage.
func up(name string, voter bool, zone string) Member {
	role := RoleData
	if name[0] == 'w' {
		role = RoleWitness
	}
	return Member{Name: name, Role: role, Zone: zone, Voter: voter, Reachable: true, CaughtUp: true}
}

func down(m Member) Member { m.Reachable, m.CaughtUp = false, false; return m }

// converge applies Next until it has nothing left to do, checking that
// every intermediate configuration keeps a reachable majority.
func converge(t *testing.T, ms []Member) ([]Member, []string) {
	t.Helper()
	var steps []string
	for i := 0; i < 10; i++ {
		c, ok := Next(ms)
		if !ok {
			return ms, steps
		}
		ms = apply(ms, c)
		if err := checkQuorum(ms, Change{}); err != nil {
			t.Fatalf("after %v: %v", c, err)
		}
		steps = append(steps, string(c.Action)+" "+c.Name)
	}
	t.Fatalf("no convergence after 10 steps: %v", steps)
	return nil, nil
}

func voters(ms []Member) string {
	var v []string
	for _, m := range sorted(ms) {
		if m.Voter {
			v = append(v, m.Name)
		}
	}
	return strings.Join(v, ",")
}

func TestWitnessVotesOnlyWithEvenDataVoters(t *testing.T) {
	// Two data voters and a new witness: the witness is promoted.
	ms, steps := converge(t, []Member{up("d1", true, ""), up("d2", true, ""), up("w1", false, "")})
	if got := voters(ms); got != "d1,d2,w1" || strings.Join(steps, ";") != "promote w1" {
		t.Fatalf("voters %s after %v", got, steps)
	}
	// A third data member: promoted first, then the witness is demoted.
	ms, steps = converge(t, append(ms, up("d3", false, "")))
	if got := voters(ms); got != "d1,d2,d3" || strings.Join(steps, ";") != "promote d3;demote w1" {
		t.Fatalf("voters %s after %v", got, steps)
	}
	// A fourth: the witness votes again, so five voters.
	ms, _ = converge(t, append(ms, up("d4", false, "")))
	if got := voters(ms); got != "d1,d2,d3,d4,w1" {
		t.Fatalf("voters %s", got)
	}
}

func TestWitnessNotPromotedUntilCaughtUp(t *testing.T) {
	w := up("w1", false, "")
	w.CaughtUp = false
	if c, ok := Next([]Member{up("d1", true, ""), up("d2", true, ""), w}); ok {
		t.Fatalf("promoted a lagging witness: %v", c)
	}
}

func TestSecondWitnessStaysNonvoter(t *testing.T) {
	ms, _ := converge(t, []Member{up("d1", true, ""), up("d2", true, ""), up("w1", true, ""), up("w2", false, "")})
	if got := voters(ms); got != "d1,d2,w1" {
		t.Fatalf("voters %s", got)
	}
	// Two voting witnesses (say, an old configuration): one is demoted,
	// keeping the reachable one.
	ms, _ = converge(t, []Member{up("d1", true, ""), up("d2", true, ""), down(up("w1", true, "")), up("w2", true, "")})
	if got := voters(ms); got != "d1,d2,w2" {
		t.Fatalf("voters %s", got)
	}
}

func TestPlanRemovePromotesWitnessFirst(t *testing.T) {
	ms := []Member{up("d1", true, ""), up("d2", true, ""), up("d3", true, ""), up("w1", false, "")}
	plan, err := PlanRemove(ms, "d3")
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 2 || plan[0].Action != Promote || plan[0].Name != "w1" || plan[1].Action != Remove || plan[1].Name != "d3" {
		t.Fatalf("plan %v", plan)
	}
	if plan, _ := PlanRemove(ms, "nobody"); plan != nil {
		t.Fatalf("plan for a non-member: %v", plan)
	}
}

func TestPlanRemoveRefusesQuorumLoss(t *testing.T) {
	// Witness down; removing a data voter leaves d1 and the dead witness:
	// one reachable voter of two.
	ms := []Member{up("d1", true, ""), up("d2", true, ""), down(up("w1", true, ""))}
	_, err := PlanRemove(ms, "d2")
	var qe *QuorumError
	if !errors.As(err, &qe) || qe.Reachable != 1 || qe.Voters != 2 {
		t.Fatalf("want a quorum error with 1 of 2, got %v", err)
	}
	if !strings.Contains(err.Error(), "1 reachable voters of 2") || !strings.Contains(err.Error(), "quorum needs 2") {
		t.Fatalf("message lacks the counts: %v", err)
	}
	// Removing the dead witness itself is fine: two reachable of two.
	if _, err := PlanRemove(ms, "w1"); err != nil {
		t.Fatal(err)
	}
}

func TestNextNeverBreaksQuorum(t *testing.T) {
	// Three data voters with one down and a voting witness: demoting the
	// witness leaves 2 reachable of 3, fine.
	ms := []Member{up("d1", true, ""), up("d2", true, ""), down(up("d3", true, "")), up("w1", true, "")}
	if c, ok := Next(ms); !ok || c.Action != Demote || c.Name != "w1" {
		t.Fatalf("got %v %v", c, ok)
	}
	// Two of three data voters down and the witness voting: 2 reachable of
	// 4; demoting it would leave 1 of 3, so nothing is done.
	ms = []Member{up("d1", true, ""), down(up("d2", true, "")), down(up("d3", true, "")), up("w1", true, "")}
	if c, ok := Next(ms); ok {
		t.Fatalf("unsafe change proposed: %v", c)
	}
}

func TestCheckJoinZones(t *testing.T) {
	ms := []Member{up("d1", true, "a"), up("d2", true, "b")}
	if w, err := CheckJoin(ms, up("w1", false, "c"), ""); err != nil || len(w) != 0 {
		t.Fatalf("distinct zones: %v %v", w, err)
	}
	_, err := CheckJoin(ms, up("w1", false, "b"), ProfileProduction)
	if err == nil || !strings.Contains(err.Error(), "would not add a failure domain") || !strings.Contains(err.Error(), "d2") {
		t.Fatalf("production, same zone: %v", err)
	}
	w, err := CheckJoin(ms, up("w1", false, "b"), ProfileTesting)
	if err != nil || len(w) != 1 || !strings.Contains(w[0], "would not add a failure domain") {
		t.Fatalf("testing, same zone: %v %v", w, err)
	}
	w, err = CheckJoin([]Member{up("d1", true, ""), up("d2", true, "b")}, up("w1", false, ""), ProfileProduction)
	if err != nil || len(w) != 1 || !strings.Contains(w[0], "failure domains cannot be checked") || !strings.Contains(w[0], "w1, d1") {
		t.Fatalf("unset zones: %v %v", w, err)
	}
	w, err = CheckJoin(append(ms, up("w1", true, "c")), up("w2", false, "d"), ProfileProduction)
	if err != nil || len(w) != 1 || !strings.Contains(w[0], "joins as a nonvoter") {
		t.Fatalf("second witness: %v %v", w, err)
	}
	if _, err := CheckJoin(ms, up("w1", false, "c"), "prod"); err == nil {
		t.Fatal("unknown profile accepted")
	}
}
