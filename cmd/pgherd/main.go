// Command pgherd runs PostgreSQL instances, Patroni clusters and their DCS.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/pgherd/pgherd/pkg/cli"
	"github.com/pgherd/pgherd/pkg/iostreams"
)

func main() {
	// One processor: a command is a chain of system calls, connections and
	// child processes, which never needs two goroutines running at once,
	// and an idle second processor spins looking for work whenever one is
	// parked (0.4-0.6 ms of CPU, and as much wall time on a busy host, in
	// `instance backups`, which waits for pgBackRest). The DCS member and
	// the supervisor are other binaries.
	runtime.GOMAXPROCS(1)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, iostreams.System(), os.Args[1:])
	stop()
	os.Exit(code)
}
