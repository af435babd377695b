// Command pgherd-supervise supervises one daemon for pgherd's process
// service manager: `pgherd-supervise [--adopt PID] --spec FILE`. pgherd
// starts it in a session of its own; it outlives the command that started
// it. It is a binary of its own, linking only the standard library, so that
// the supervision of each daemon costs little memory (pkg/service/DESIGN.md).
package main

import (
	"os"

	"github.com/pgherd/pgherd/pkg/supervise"
)

func main() { os.Exit(supervise.Main(os.Args[1:], os.Stderr)) }
