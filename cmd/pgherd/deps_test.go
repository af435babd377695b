package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoServerDeps keeps the DCS server out of the pgherd CLI. Its
// packages (gRPC, protobuf, etcd's API and client, zap, hashicorp/raft)
// cost every command ~14 ms of package initialisation and the page faults
// of a binary twice the size, which put `instance get` and `pgconf set`
// over their start-up budget against psql (issues #2 and #3). The server
// lives in pkg/dcs/server and runs as its own binary, cmd/pgherd-dcs.
func TestNoServerDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	banned := func(pkg string) bool {
		for _, b := range []string{"google.golang.org/grpc", "google.golang.org/protobuf", "go.etcd.io/etcd/", "go.uber.org/zap", "github.com/hashicorp/raft"} {
			if strings.HasPrefix(pkg, b) {
				return true
			}
		}
		return false
	}
	// Name where each banned package enters from our own code, which is
	// where the cut belongs; else (a library pulls it in) the package.
	var found []string
	entered := false
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if banned(f[0]) {
			found = append(found, f[0])
		}
		if !strings.HasPrefix(f[0], "github.com/pgherd/pgherd/") {
			continue
		}
		for _, imp := range f[1:] {
			if banned(imp) || strings.HasPrefix(imp, "github.com/pgherd/pgherd/pkg/dcs/server") {
				t.Errorf("%s imports %s: the pgherd CLI must not link the DCS server or its dependencies", f[0], imp)
				entered = true
			}
		}
	}
	if len(found) > 0 && !entered {
		t.Errorf("pgherd links %s (through a library): the CLI must not link the DCS server's dependencies", strings.Join(found, ", "))
	}
}
