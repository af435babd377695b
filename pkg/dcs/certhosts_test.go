package dcs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCertHosts(t *testing.T) {
	c := Config{ListenPeer: "0.0.0.0:2380", AdvertisePeer: "db1.example:2380", ListenClient: "10.0.0.5:2379", AdvertiseClient: "https://db1.example:2379"}
	if got := PeerHosts(c); !slices.Equal(got, []string{"db1.example"}) {
		t.Errorf("peer hosts %v: the wildcard listener is no name to check", got)
	}
	if got := ClientHosts(c); !slices.Equal(got, []string{"db1.example", "10.0.0.5"}) {
		t.Errorf("client hosts %v", got)
	}
	c = Config{ListenPeer: "127.0.0.1:2380", ListenClient: "127.0.0.1:2379"}
	if got := ClientHosts(c); !slices.Equal(got, []string{"127.0.0.1"}) {
		t.Errorf("client hosts %v: one each", got)
	}
	if httpsURL("http://h:1") != "https://h:1" || httpsURL("") != "" || httpsURL("https://h:1") != "https://h:1" {
		t.Error("httpsURL")
	}
}

// TestEnsureCertHosts: a data member whose client address changed gets
// certificates naming it; without the CA (a witness) it is refused with
// what to run; certificates outside the cluster's layout are only
// reported.
func TestEnsureCertHosts(t *testing.T) {
	dir := t.TempDir()
	pki := PKI{Dir: filepath.Join(dir, "ca")}
	if err := pki.Create("t"); err != nil {
		t.Fatal(err)
	}
	mdir := filepath.Join(dir, "tls", "m")
	c := Config{Name: "m", Role: RoleData, ListenPeer: "127.0.0.1:2380", ListenClient: "127.0.0.1:2379", CADir: pki.Dir}
	if err := pki.IssueMember(mdir, c.Name, c.Role, PeerHosts(c), ClientHosts(c)); err != nil {
		t.Fatal(err)
	}
	c.PeerTLS, c.ClientTLS = MemberTLS(mdir)
	if ch, err := EnsureCertHosts(c); ch != (CertHosts{}) || err != nil {
		t.Fatalf("unchanged addresses: %+v, %v", ch, err)
	}
	// Only the advertised hosts are required: a certificate issued before
	// listened hosts were named still serves.
	moved := c
	moved.CADir, moved.ListenClient = "", "127.0.0.9:2379"
	moved.AdvertiseClient = "https://127.0.0.1:2379"
	if ch, err := EnsureCertHosts(moved); ch != (CertHosts{}) || err != nil {
		t.Fatalf("a listener not named, the advertised host named: %+v, %v", ch, err)
	}
	c.AdvertiseClient = "https://db1.example:2379"
	witness := c
	witness.CADir, witness.Role = "", RoleWitness
	if _, err := EnsureCertHosts(witness); err == nil || !strings.Contains(err.Error(), "does not name db1.example, an address it serves on") || !strings.Contains(err.Error(), "`pgherd dcs cert renew m`") {
		t.Fatalf("a member without the CA: %v", err)
	}
	if ch, err := EnsureCertHosts(c); !ch.Reissued || err != nil {
		t.Fatalf("new address: %+v, %v", ch, err)
	}
	if h, err := missingHost(c.ClientTLS.Cert, ClientHosts(c)); h != "" || err != nil {
		t.Fatalf("the new certificate misses %q (%v)", h, err)
	}
	own := c
	own.ClientTLS.Cert = filepath.Join(dir, "elsewhere.crt")
	own.AdvertiseClient = "https://db2.example:2379"
	if err := writeFile0600(own.ClientTLS.Cert, mustRead(t, c.ClientTLS.Cert)); err != nil {
		t.Fatal(err)
	}
	if ch, err := EnsureCertHosts(own); ch.Unnamed != "db2.example" || err != nil {
		t.Fatalf("the operator's own certificate is reported, not refused: %+v, %v", ch, err)
	}
}

func mustRead(t *testing.T, f string) []byte {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
