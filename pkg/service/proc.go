package service

import (
	"bytes"
	"os"
	"slices"
	"strconv"
)

// procState is what /proc says of a PID.
type procState int

const (
	procGone  procState = iota // no such process, or a zombie waiting to be reaped
	procOther                  // a live process that is not the program we started
	procOurs                   // a live process running our program
)

// inspect tells whether pid is a live process running exec.
//
// A pidfile can outlive its process and the PID can be reused, so a live PID
// proves nothing: the process must also run our program. The kernel gives a
// program the argv it was started with, and an interpreted program (Patroni is
// a Python script) gets the interpreter in front of it, so "ours" means the
// command line ends with exec. The programs pgherd runs do not rewrite their
// argv (the postmaster keeps its own; only its children retitle themselves).
//
// A zombie counts as gone: PID 1 of a container may never reap it, and it
// runs nothing.
func inspect(pid int, exec []string) procState {
	if pid <= 0 {
		return procGone
	}
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return procGone
	}
	// The state letter follows the command name, which is in parentheses and
	// may itself contain ") ".
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return procGone
	}
	if st := stat[i+2]; st == 'Z' || st == 'X' {
		return procGone
	}
	raw, err := os.ReadFile(dir + "/cmdline")
	if err != nil {
		return procGone // it went away between the two reads
	}
	args := splitCmdline(raw)
	if len(args) >= len(exec) && slices.Equal(args[len(args)-len(exec):], exec) {
		return procOurs
	}
	return procOther
}

func splitCmdline(raw []byte) []string {
	raw = bytes.TrimSuffix(raw, []byte{0})
	if len(raw) == 0 {
		return nil
	}
	var args []string
	for _, a := range bytes.Split(raw, []byte{0}) {
		args = append(args, string(a))
	}
	return args
}
