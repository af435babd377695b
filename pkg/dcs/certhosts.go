package dcs

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
)

// A member's certificates name every address it serves on: its peer
// certificate the advertised peer host (and the listened one, unless a
// wildcard), its client certificate the host of the client URL it
// advertises in member/list (and the listened one). Patroni 3.0.2 hands
// its etcd client to urllib3, which checks the host name of every URL
// member/list gives it, and members check each other's peer host names.
// When an address changes (the member's YAML edited, then a restart),
// the member reissues its certificates at start from its host's CA
// (EnsureCertHosts), so that these checks keep passing.

// PeerHosts is every host member c's peer certificate must name.
func PeerHosts(c Config) []string {
	return hostSet(hostOf(c.PeerAddr()), hostOf(c.ListenPeer))
}

// ClientHosts is every host member c's client-port certificate must name.
func ClientHosts(c Config) []string {
	var adv string
	if c.AdvertiseClient != "" {
		adv = hostOfURL(c.AdvertiseClient)
	}
	return hostSet(adv, hostOf(c.ListenClient))
}

// hostSet keeps the hosts a client can dial: not empty, not a wildcard,
// each once.
func hostSet(hosts ...string) []string {
	var out []string
	for _, h := range hosts {
		if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() || slices.Contains(out, h) {
			continue
		}
		out = append(out, h)
	}
	return out
}

// missingHost returns a host of hosts that certificate file does not name
// ("" when it names them all).
func missingHost(file string, hosts []string) (string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	cert, err := parseCert(raw)
	if err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return h, nil
		}
	}
	return "", nil
}

// CertHosts is what EnsureCertHosts found.
type CertHosts struct {
	// Reissued: the member's certificates were issued anew for its
	// addresses.
	Reissued bool
	// Unnamed, when set, is an advertised host that certificates the
	// operator provided (not the cluster's own layout) do not name: the
	// member starts, and says so.
	Unnamed string
}

// EnsureCertHosts checks, as member c starts with its advertised
// addresses filled in (Config.Advertise), that its certificates name
// both: the peer host other members dial, the client URL's host that
// member/list gives clients. (The listened hosts are named when a
// certificate is issued, but not required here: certificates issued
// before they were are not refused for it.) When one does not (an
// address was changed), a data member, whose host holds the cluster's CA
// (c.CADir), gets new certificates for its name, role and current
// addresses, written where its configuration says. A member with
// certificates of the cluster's own layout (MemberTLS) and no CA (a
// witness) is refused with what to run. Certificates the operator
// provided are only reported: pgherd did not make them and cannot
// remake them.
func EnsureCertHosts(c Config) (CertHosts, error) {
	if !c.PeerTLS.Enabled() || !c.ClientTLS.Enabled() {
		return CertHosts{}, nil
	}
	var miss, port string
	for _, p := range []struct {
		port  string
		file  string
		hosts []string
	}{{"peer", c.PeerTLS.Cert, hostSet(hostOf(c.PeerAddr()))}, {"client", c.ClientTLS.Cert, hostSet(hostOfURL(c.AdvertiseClient))}} {
		h, err := missingHost(p.file, p.hosts)
		if err != nil {
			return CertHosts{}, err
		}
		if h != "" {
			miss, port = h, p.port
			break
		}
	}
	if miss == "" {
		return CertHosts{}, nil
	}
	dir := filepath.Dir(c.PeerTLS.Cert)
	if peer, client := MemberTLS(dir); peer != c.PeerTLS || client != c.ClientTLS {
		return CertHosts{Unnamed: miss}, nil
	}
	pki := PKI{Dir: c.CADir}
	if c.CADir == "" || !pki.Exists() {
		return CertHosts{}, fmt.Errorf("the %s certificate of member %s (%s) does not name %s, an address it serves on: issue it new certificates (on a data member's host `pgherd dcs cert renew %s`; a witness is removed with `pgherd witness remove` and added again with a token)",
			port, c.Name, map[string]string{"peer": c.PeerTLS.Cert, "client": c.ClientTLS.Cert}[port], miss, c.Name)
	}
	if err := pki.IssueMember(dir, c.Name, c.Role, PeerHosts(c), ClientHosts(c)); err != nil {
		return CertHosts{}, fmt.Errorf("reissue the certificates of member %s for its addresses: %w", c.Name, err)
	}
	return CertHosts{Reissued: true}, nil
}
