package site

import "testing"

func TestDCSSnapshotsRefused(t *testing.T) {
	s := Defaults()
	s.Patroni.DCS.Embedded.Snapshots = DCSSnapshots{Dir: "backup/dcs", Interval: 0, Keep: 3}
	want := "patroni.dcs.embedded.snapshots: interval 0 and keep 3: want at least 1 second and 1 snapshot"
	if err := s.Patroni.validate(); err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}
