package dcs

import (
	"strings"
	"testing"
	"time"
)

func TestFastFailoverValidate(t *testing.T) {
	ok := FastFailover{LeaderKey: "/service/ha/leader", Node: "pg1", Detect: 6 * time.Second, LoopWait: time.Second}
	if err := ok.validate(RoleData); err != nil {
		t.Fatal(err)
	}
	if err := (FastFailover{}).validate(RoleWitness); err != nil {
		t.Fatalf("no declaration on a witness: %v", err)
	}
	held := FastFailover{LeaderKey: ok.LeaderKey, Node: ok.Node}
	if err := held.validate(RoleData); err != nil || !held.Declared() || held.Armed() || !ok.Armed() {
		t.Fatalf("a declaration without detect: %v (declared %v, armed %v)", err, held.Declared(), held.Armed())
	}
	for _, tc := range []struct {
		edit func(*FastFailover)
		role string
		want string
	}{
		{func(*FastFailover) {}, RoleWitness, "a witness runs beside no Patroni member"},
		{func(f *FastFailover) { f.LeaderKey = "/service/ha/config" }, RoleData, "want Patroni's /NAMESPACE/SCOPE/leader"},
		{func(f *FastFailover) { f.Node = "" }, RoleData, "node (the Patroni member beside this DCS member) is required"},
		{func(f *FastFailover) { f.Detect = 0 }, RoleData, "want at least 1s each"},
		{func(f *FastFailover) { f.LoopWait = 0 }, RoleData, "or neither to only declare the Patroni member"},
		{func(f *FastFailover) { f.LeaderKey = "" }, RoleData, "leader_key is required"},
	} {
		f := ok
		tc.edit(&f)
		if err := f.validate(tc.role); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v as %s: got %v, want %q", f, tc.role, err, tc.want)
		}
	}
}
