package supervise

import (
	"bytes"
	"os"
	"slices"
	"strconv"
)

// Proc is what /proc says of a PID.
type Proc struct {
	Alive bool   // exists and is not a zombie
	Ours  bool   // alive and runs our program
	Start uint64 // start time in clock ticks since boot: tells a reused PID apart
}

// Inspect tells whether pid is a live process running exec.
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
func Inspect(pid int, exec []string) Proc {
	if pid <= 0 {
		return Proc{}
	}
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return Proc{}
	}
	// The fields after the command name, which is in parentheses and may
	// itself hold ") ": state is field 3, starttime field 22.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return Proc{}
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 20 || f[0][0] == 'Z' || f[0][0] == 'X' {
		return Proc{}
	}
	p := Proc{Alive: true}
	p.Start, _ = strconv.ParseUint(string(f[19]), 10, 64)
	raw, err := os.ReadFile(dir + "/cmdline")
	if err != nil {
		return Proc{}
	}
	args := splitCmdline(raw)
	p.Ours = len(args) >= len(exec) && slices.Equal(args[len(args)-len(exec):], exec)
	return p
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
