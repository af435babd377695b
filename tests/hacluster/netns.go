package hacluster

import (
	"fmt"
	"os/exec"
	"strings"
)

// Netns is a small network made of namespaces: a hub namespace holding a
// bridge, and one namespace per host joined to it by a veth pair, each
// host with an address of 10.77.0.0/24. AddPeerNetwork adds a second
// bridge (10.78.0.0/24) for the DCS members' peer traffic alone. Nothing
// touches the caller's own namespace: interfaces are created inside the
// namespaces.
type Netns struct {
	prefix  string
	Hosts   []Host
	peerNet bool
}

// NewNetns creates the hub and n hosts named prefix-h1..hN (prefix at
// most 8 characters). Call Close to delete them, also on failure.
func NewNetns(prefix string, names []string) (*Netns, error) {
	nw := &Netns{prefix: prefix}
	hub := prefix + "-hub"
	if err := ip("netns", "add", hub); err != nil {
		return nw, err
	}
	if err := ip("-n", hub, "link", "add", "br0", "type", "bridge"); err != nil {
		return nw, err
	}
	if err := ip("-n", hub, "link", "set", "br0", "up"); err != nil {
		return nw, err
	}
	for i, name := range names {
		ns := fmt.Sprintf("%s-h%d", prefix, i+1)
		h := Host{Name: name, Addr: fmt.Sprintf("10.77.0.%d", i+1), Netns: ns}
		if err := ip("netns", "add", ns); err != nil {
			return nw, err
		}
		nw.Hosts = append(nw.Hosts, h)
		for _, args := range [][]string{
			{"-n", hub, "link", "add", nw.port(i), "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"-n", hub, "link", "set", nw.port(i), "master", "br0", "up"},
			{"-n", ns, "addr", "add", h.Addr + "/24", "dev", "eth0"},
			{"-n", ns, "link", "set", "eth0", "up"},
			{"-n", ns, "link", "set", "lo", "up"},
		} {
			if err := ip(args...); err != nil {
				return nw, err
			}
		}
	}
	return nw, nil
}

func (nw *Netns) port(i int) string     { return fmt.Sprintf("v%d", i+1) }
func (nw *Netns) peerPort(i int) string { return fmt.Sprintf("p%d", i+1) }

// AddPeerNetwork joins every host to a second bridge by a second veth pair
// (eth1, an address of 10.78.0.0/24) and sets each host's PeerAddr: a
// cluster started on these hosts puts its DCS members' peer ports there
// and their client ports on the first network, so that CutPeer cuts a
// host's DCS peer traffic while its clients (Patroni, PostgreSQL
// replication, REST) go on.
func (nw *Netns) AddPeerNetwork() error {
	hub := nw.prefix + "-hub"
	if err := ip("-n", hub, "link", "add", "br1", "type", "bridge"); err != nil {
		return err
	}
	if err := ip("-n", hub, "link", "set", "br1", "up"); err != nil {
		return err
	}
	for i := range nw.Hosts {
		h := &nw.Hosts[i]
		h.PeerAddr = fmt.Sprintf("10.78.0.%d", i+1)
		for _, args := range [][]string{
			{"-n", hub, "link", "add", nw.peerPort(i), "type", "veth", "peer", "name", "eth1", "netns", h.Netns},
			{"-n", hub, "link", "set", nw.peerPort(i), "master", "br1", "up"},
			{"-n", h.Netns, "addr", "add", h.PeerAddr + "/24", "dev", "eth1"},
			{"-n", h.Netns, "link", "set", "eth1", "up"},
		} {
			if err := ip(args...); err != nil {
				return err
			}
		}
	}
	nw.peerNet = true
	return nil
}

// Cut takes host i off the bridges (both, with a peer network); Heal puts
// it back.
func (nw *Netns) Cut(i int) error  { return nw.setPorts(i, "down") }
func (nw *Netns) Heal(i int) error { return nw.setPorts(i, "up") }

func (nw *Netns) setPorts(i int, state string) error {
	if err := ip("-n", nw.prefix+"-hub", "link", "set", nw.port(i), state); err != nil {
		return err
	}
	if nw.peerNet {
		return ip("-n", nw.prefix+"-hub", "link", "set", nw.peerPort(i), state)
	}
	return nil
}

// CutPeer takes host i off the peer network alone (AddPeerNetwork);
// HealPeer puts it back.
func (nw *Netns) CutPeer(i int) error {
	return ip("-n", nw.prefix+"-hub", "link", "set", nw.peerPort(i), "down")
}
func (nw *Netns) HealPeer(i int) error {
	return ip("-n", nw.prefix+"-hub", "link", "set", nw.peerPort(i), "up")
}

// Close deletes every namespace it made (and so their interfaces).
func (nw *Netns) Close() {
	for _, h := range nw.Hosts {
		ip("netns", "del", h.Netns)
	}
	ip("netns", "del", nw.prefix+"-hub")
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
