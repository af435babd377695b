package patroni

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestMergePatchRoundTrip(t *testing.T) {
	var old map[string]any
	if err := json.Unmarshal([]byte(`{"ttl": 30, "loop_wait": 10, "postgresql": {"parameters": {"max_connections": 100, "work_mem": "4MB"}, "use_pg_rewind": true}, "pause": false}`), &old); err != nil {
		t.Fatal(err)
	}
	old["maximum_lag_on_failover"] = float64(1048576)
	text, err := ConfigYAML(old)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(text), "maximum_lag_on_failover: 1048576\n") {
		t.Errorf("whole numbers in YAML:\n%s", text)
	}
	same, err := ParseConfigYAML(text)
	if err != nil {
		t.Fatal(err)
	}
	if p := MergePatch(old, same); len(p) != 0 {
		t.Fatalf("an unedited copy gives the patch %v", p)
	}
	edited, err := ParseConfigYAML([]byte("ttl: 40\nloop_wait: 10\nmaximum_lag_on_failover: 1048576\npostgresql:\n  parameters:\n    max_connections: 100\n  use_pg_rewind: true\npause: false\nsynchronous_mode: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(MergePatch(old, edited))
	want := `{"postgresql":{"parameters":{"work_mem":null}},"synchronous_mode":true,"ttl":40}`
	if string(got) != want {
		t.Errorf("patch %s, want %s", got, want)
	}
	for _, bad := range []string{"- a\n- b\n", "ttl: [\n"} {
		if _, err := ParseConfigYAML([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if m, err := ParseConfigYAML([]byte("")); err != nil || !reflect.DeepEqual(m, map[string]any{}) {
		t.Errorf("empty: %v %v", m, err)
	}
}
