package tests

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pgherd/pgherd/pkg/cli"
	"github.com/pgherd/pgherd/pkg/iostreams"
)

// The checked-in command reference must match the command tree: run
// 'make docs' after changing a command.
func TestReferenceIsCurrent(t *testing.T) {
	dir := t.TempDir()
	ios, _, _, errOut := iostreams.Test()
	if code := cli.Main(t.Context(), ios, []string{"gen-docs", dir}); code != 0 {
		t.Fatalf("gen-docs: exit %d: %s", code, errOut)
	}
	want, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	have, _ := filepath.Glob(filepath.Join("..", "docs", "reference", "*.md"))
	if len(want) != len(have) {
		t.Fatalf("docs/reference has %d pages, the commands make %d: run 'make docs'", len(have), len(want))
	}
	for _, w := range want {
		got, err := os.ReadFile(filepath.Join("..", "docs", "reference", filepath.Base(w)))
		exp, _ := os.ReadFile(w)
		if err != nil || string(got) != string(exp) {
			t.Errorf("docs/reference/%s is stale: run 'make docs'", filepath.Base(w))
		}
	}
}
