// Command pgherd runs PostgreSQL instances, Patroni clusters and their DCS.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgherd/pgherd/pkg/cli"
	"github.com/pgherd/pgherd/pkg/iostreams"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, iostreams.System(), os.Args[1:])
	stop()
	os.Exit(code)
}
