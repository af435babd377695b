// Command pgherd-dcs runs one member of pgherd's embedded DCS in the
// foreground: `pgherd-dcs --config FILE`. It is what the service manager
// starts for each member (and what `pgherd dcs serve` execs). The daemon is
// a binary of its own so that the pgherd CLI links none of the server's
// packages (Raft, gRPC, protobuf, etcd's API), whose initialisation and
// size slowed every CLI command's start-up (issues #2 and #3).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgherd/pgherd/pkg/dcs/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := server.Main(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}
