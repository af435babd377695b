package dcs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIssuedCertificates: member certificates name the member and its
// role and carry their hosts; each CA key is 0600; an expired certificate
// is refused before any handshake, with the command that renews it.
func TestIssuedCertificates(t *testing.T) {
	p := PKI{Dir: filepath.Join(t.TempDir(), "ca")}
	if err := p.Create("c"); err != nil {
		t.Fatal(err)
	}
	if err := p.Create("c"); err == nil {
		t.Fatal("a second CA replaced the first")
	}
	for _, f := range []string{peerCAKey, clientCAKey} {
		if fi, err := os.Stat(filepath.Join(p.Dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi, err)
		}
	}
	dir := filepath.Join(t.TempDir(), "m1")
	if err := p.IssueMember(dir, "m1", RoleWitness, []string{"127.0.0.1"}, []string{"db.example"}); err != nil {
		t.Fatal(err)
	}
	peer, client := MemberTLS(dir)
	raw, _ := os.ReadFile(peer.Cert)
	c, err := parseCert(raw)
	if err != nil {
		t.Fatal(err)
	}
	if id := IdentityOf(c); id != (Identity{Name: "m1", Role: RoleWitness}) || len(c.URIs) != 1 || c.URIs[0].String() != "pgherd://member/m1" ||
		len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal([]byte{127, 0, 0, 1}) {
		t.Fatalf("peer certificate: %+v %v %v", IdentityOf(c), c.URIs, c.IPAddresses)
	}
	raw, _ = os.ReadFile(client.Cert)
	if c, _ = parseCert(raw); len(c.DNSNames) != 1 || c.DNSNames[0] != "db.example" {
		t.Fatalf("client certificate names %v", c.DNSNames)
	}

	ca, err := p.Load(true)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := sign(leafTemplate(Leaf{Name: "old", Role: RoleData}), &key.PublicKey, ca.cert, ca.key, -30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	old := TLSConfig{Cert: filepath.Join(dir, "old.crt"), Key: filepath.Join(dir, "old.key"), CA: peer.CA}
	os.WriteFile(old.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(old.Key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: mustMarshalKey(key)}), 0o600)
	if _, err := old.Client(); err == nil || !strings.Contains(err.Error(), "expired on") || !strings.Contains(err.Error(), "`pgherd dcs cert renew`") {
		t.Fatalf("expired certificate: %v", err)
	}
	if _, err := NewAdminClient("127.0.0.1:1", old); err == nil {
		t.Fatal("an admin client with an expired certificate was made")
	}
}
