package instance

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/pgherd/pgherd/pkg/site"
)

// choosePort checks a requested port, or picks the site's port or the next
// one that no instance uses and nothing listens on.
func choosePort(env *Env, want int) (int, error) {
	if want != 0 {
		if err := checkPort(env, want, nil); err != nil {
			return 0, fmt.Errorf("%w: choose another with --port", err)
		}
		return want, nil
	}
	used, err := usedPorts(env, nil)
	if err != nil {
		return 0, err
	}
	for p := env.Site.PostgreSQL.Port; p < env.Site.PostgreSQL.Port+100 && p <= 65535; p++ {
		if _, taken := used[p]; !taken && portFree(p) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free port in %d-%d: give one with --port", env.Site.PostgreSQL.Port, env.Site.PostgreSQL.Port+99)
}

// usedPorts maps the ports of the instances other than self, the ones they
// run on and the ones their next start uses, to their IDs.
func usedPorts(env *Env, self *Instance) (map[int]string, error) {
	all, err := List(env)
	if err != nil {
		return nil, err
	}
	used := map[int]string{}
	for _, o := range all {
		if self == nil || o.ID() != self.ID() {
			used[o.Port], used[o.ConfPort] = o.ID(), o.ID()
		}
	}
	return used, nil
}

// checkPort refuses a port PostgreSQL could not listen on as the instance
// self (nil for a new one): out of range, privileged, another instance's,
// or taken by something else on this host. The port self runs on is its own.
func checkPort(env *Env, port int, self *Instance) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("port %d is not a TCP port (1-65535)", port)
	}
	if err := checkUnprivileged(env.User, postgresAccount, port); err != nil {
		return err
	}
	used, err := usedPorts(env, self)
	if err != nil {
		return err
	}
	if id, ok := used[port]; ok {
		return fmt.Errorf("port %d is already used by instance %s", port, id)
	}
	if self != nil && self.State() == Started && port == self.Port {
		return nil
	}
	if !portFree(port) {
		return fmt.Errorf("port %d is already in use on this host", port)
	}
	return nil
}

// portFree reports whether nothing listens on port on any address. A
// wildcard bind fails on Linux when any address has the port.
func portFree(port int) bool {
	l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// checkUnprivileged refuses a port below net.ipv4.ip_unprivileged_port_start
// when account u, which runs who, could not listen on it.
func checkUnprivileged(u site.SysUser, who string, port int) error {
	start := unprivilegedPortStart()
	if port >= start || !u.Switch && canBindPrivileged() {
		return nil
	}
	return fmt.Errorf("port %d is below %d (net.ipv4.ip_unprivileged_port_start) and account %s, which %s runs as, cannot listen on it", port, start, u.Name, who)
}

// postgresAccount names what env.User runs, in checkUnprivileged's errors.
const postgresAccount = "PostgreSQL (and Patroni)"

// checkListen refuses an address a service of the instance could not
// listen on: not HOST:PORT, a privileged port, not this host's, or in use.
func checkListen(env *Env, u site.SysUser, who, what, addr string) error {
	_, p, err := net.SplitHostPort(addr)
	port, perr := strconv.Atoi(p)
	if err != nil || perr != nil || port < 1 || port > 65535 {
		return fmt.Errorf("%s %q: want HOST:PORT", what, addr)
	}
	if err := checkUnprivileged(u, who, port); err != nil {
		return fmt.Errorf("%s %s: %w: choose another port", what, addr, err)
	}
	l, err := net.Listen("tcp", addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%s %s is already in use on this host: choose another port", what, addr)
	case err != nil:
		return fmt.Errorf("%s %s: cannot listen there (%v): use an address of this host", what, addr, err)
	}
	l.Close()
	return nil
}

// unprivilegedPortStart is the first port any account may listen on.
func unprivilegedPortStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return 1024
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 1024
	}
	return n
}

// canBindPrivileged reports whether this process has CAP_NET_BIND_SERVICE
// (bit 10 of its effective capabilities): the server, started by it
// without switching accounts, inherits nothing more.
func canBindPrivileged() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<10) != 0
		}
	}
	return false
}
