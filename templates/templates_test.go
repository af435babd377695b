package templates

import (
	"io"
	"strings"
	"testing"
)

// The rendered units are pinned by golden tests in pkg/service; these cover
// the lookup itself.
func TestRenderErrors(t *testing.T) {
	if err := Render(io.Discard, "nope.service", nil); err == nil || !strings.Contains(err.Error(), "no template for nope.service") {
		t.Errorf("unknown template: %v", err)
	}
	if err := Render(io.Discard, "pgherd-dcs@.service", struct{}{}); err == nil {
		t.Error("a missing key rendered without error")
	}
	for _, n := range []string{"pgherd-postgresql@.service", "pgherd-patroni@.service", "pgherd-dcs@.service", "instance.conf"} {
		if _, ok := set()[n]; !ok {
			t.Errorf("template %s is not embedded", n)
		}
	}
}
