package manifest

import (
	"strings"
	"testing"
)

func TestParseRefusesUnknownFieldsWithTheirLine(t *testing.T) {
	_, err := Parse([]byte("roles:\n  - name: a\n    logn: true\n"))
	if err == nil || err.Error() != "line 3: field logn not found in type manifest.Role" {
		t.Errorf("err = %v", err)
	}
	_, err = Parse([]byte("databases:\n  - name: a\n    state: gone\n"))
	if err == nil || !strings.Contains(err.Error(), `state "gone": use present or absent`) {
		t.Errorf("err = %v", err)
	}
	_, err = Parse([]byte("roles:\n  - name: a\n  - name: a\n"))
	if err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("err = %v", err)
	}
	m, err := Parse([]byte(""))
	if err != nil || len(m.Roles) != 0 {
		t.Errorf("empty manifest: %v", err)
	}
}
