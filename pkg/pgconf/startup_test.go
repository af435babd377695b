package pgconf

import "testing"

func TestParseBool(t *testing.T) {
	for v, want := range map[string]bool{"on": true, "ON": true, "true": true, "t": true, "yes": true, "y": true, "1": true,
		"off": false, "of": false, "false": false, "f": false, "no": false, "0": false, "": false} {
		if got := parseBool(v); got != want {
			t.Errorf("parseBool(%q) = %v, want %v", v, got, want)
		}
	}
}
