package service

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestMain builds pgherd-supervise beside the test binary, where the
// process manager looks for it (as it looks beside pgherd).
func TestMain(m *testing.M) {
	exe, err := os.Executable()
	if err == nil {
		cmd := exec.Command("go", "build", "-o", filepath.Join(filepath.Dir(exe), SupervisorName), "github.com/pgherd/pgherd/cmd/pgherd-supervise")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		var out []byte
		if out, err = cmd.CombinedOutput(); err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "building pgherd-supervise:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
