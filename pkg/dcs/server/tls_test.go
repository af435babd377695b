package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// writePKI writes a CA and one certificate for 127.0.0.1 (used as both
// server and client certificate), all 0600.
func writePKI(t *testing.T) (dcs.TLSConfig, *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pgherd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "member"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	files := dcs.TLSConfig{Cert: filepath.Join(dir, "m.crt"), Key: filepath.Join(dir, "m.key"), CA: filepath.Join(dir, "ca.crt")}
	for f, b := range map[string]*pem.Block{files.Cert: {Type: "CERTIFICATE", Bytes: der},
		files.Key: {Type: "EC PRIVATE KEY", Bytes: keyDER}, files.CA: {Type: "CERTIFICATE", Bytes: caDER}} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cc, err := files.Client()
	if err != nil {
		t.Fatal(err)
	}
	return files, cc
}

// TestTLS runs a 2-member cluster with mutual TLS on both ports and
// checks gRPC, the gateway, and that a client without a certificate is
// refused.
func TestTLS(t *testing.T) {
	files, clientTLS := writePKI(t)
	c := newCluster(t, 2, func(cfg *dcs.Config) { cfg.PeerTLS, cfg.ClientTLS = files, files })
	if !strings.HasPrefix(c.servers[0].ClientURL(), "https://") {
		t.Fatalf("client URL %s", c.servers[0].ClientURL())
	}
	ctx := ctxT(t, 20*time.Second)
	cl, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints(), TLS: clientTLS, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Put(ctx, "/tls", "yes"); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}}
	resp, err := hc.Post(c.servers[1].ClientURL()+"/v3/kv/range", "application/json", strings.NewReader(`{"key":"L3Rscw=="}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"value":"eWVz"`) {
		t.Fatalf("gateway over TLS: %d %s", resp.StatusCode, body)
	}
	noCert := clientTLS.Clone()
	noCert.Certificates = nil
	hc = &http.Client{Transport: &http.Transport{TLSClientConfig: noCert}}
	if _, err := hc.Get(c.servers[0].ClientURL() + "/version"); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	ac, err := dcs.NewAdminClient(c.servers[0].PeerAddr(), files)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if ms, err := ac.Members(ctx); err != nil || len(ms) != 2 || !strings.HasPrefix(ms[0].PeerURL, "https://") {
		t.Fatalf("members over peer TLS: %+v %v", ms, err)
	}
}
