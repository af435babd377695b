package instance

import "testing"

func TestLeaderFirstOnlyWhenAClusterWideValueGoesDown(t *testing.T) {
	s := func(v string) *string { return &v }
	for _, c := range []struct {
		ch   PatroniParamChange
		want bool
	}{
		{PatroniParamChange{Name: "max_connections", Old: s("100"), New: s("150"), Path: PathCluster}, false},
		{PatroniParamChange{Name: "max_connections", Old: s("150"), New: s("100"), Path: PathCluster}, true},
		{PatroniParamChange{Name: "max_connections", New: s("50"), Path: PathCluster}, false},
		{PatroniParamChange{Name: "work_mem", Old: s("8"), New: s("4"), Path: PathLocal}, false},
	} {
		r := &PatroniParamResult{Changes: []PatroniParamChange{c.ch}}
		if got := r.LeaderFirst(); got != c.want {
			t.Errorf("%+v: LeaderFirst %v, want %v", c.ch, got, c.want)
		}
	}
}
