package server

import (
	"crypto/tls"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// testPKI is a cluster's authorities in a temporary directory, as
// dcs.Local makes them.
type testPKI struct {
	t   *testing.T
	pki dcs.PKI
	dir string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{t: t, pki: dcs.PKI{Dir: filepath.Join(dir, "ca")}, dir: dir}
	if err := p.pki.Create("test"); err != nil {
		t.Fatal(err)
	}
	return p
}

// member issues the credentials of member name with role for 127.0.0.1
// and returns its peer and client TLS settings.
func (p *testPKI) member(name, role string) (peer, client dcs.TLSConfig) {
	p.t.Helper()
	dir := filepath.Join(p.dir, "tls", name)
	if err := p.pki.IssueMember(dir, name, role, []string{"127.0.0.1"}, []string{"127.0.0.1"}); err != nil {
		p.t.Fatal(err)
	}
	return dcs.MemberTLS(dir)
}

// admin issues the administrator's peer credential.
func (p *testPKI) admin() dcs.TLSConfig {
	p.t.Helper()
	ca, err := p.pki.Load(true)
	if err != nil {
		p.t.Fatal(err)
	}
	dir := filepath.Join(p.dir, "admin")
	if err := ca.Issue(dcs.Leaf{Name: "pgherd-admin", Role: dcs.CertAdmin}, dir, "peer", dcs.PeerCAFile); err != nil {
		p.t.Fatal(err)
	}
	peer, _ := dcs.MemberTLS(dir)
	return peer
}

// client issues an etcd client certificate and returns it as a
// *tls.Config trusting the client CA.
func (p *testPKI) client(name string) *tls.Config {
	p.t.Helper()
	dir := filepath.Join(p.dir, "clients")
	if err := p.pki.IssueClient(dir, name, name); err != nil {
		p.t.Fatal(err)
	}
	tc, err := dcs.TLSConfig{Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key"), CA: filepath.Join(dir, dcs.ClientCAFile)}.Client()
	if err != nil {
		p.t.Fatal(err)
	}
	return tc
}

// secure gives each member of a test cluster its own credentials (role
// data unless roles names another).
func (p *testPKI) secure(roles map[string]string) func(*dcs.Config) {
	return func(cfg *dcs.Config) {
		role := roles[cfg.Name]
		if role == "" {
			role = dcs.RoleData
		}
		cfg.Role = role
		cfg.PeerTLS, cfg.ClientTLS = p.member(cfg.Name, role)
	}
}

// TestTLS runs a 2-member cluster with the cluster's own PKI (mutual TLS
// on both ports) and checks gRPC, the gateway, that a client without a
// certificate is refused, and that a member's peer certificate is no
// client credential (each port trusts only its own CA).
func TestTLS(t *testing.T) {
	p := newTestPKI(t)
	c := newCluster(t, 2, p.secure(nil))
	if !strings.HasPrefix(c.servers[0].ClientURL(), "https://") {
		t.Fatalf("client URL %s", c.servers[0].ClientURL())
	}
	clientTLS := p.client("patroni")
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
	peerAsClient, err := c.cfgs[0].PeerTLS.Client()
	if err != nil {
		t.Fatal(err)
	}
	peerAsClient.RootCAs = clientTLS.RootCAs
	hc = &http.Client{Transport: &http.Transport{TLSClientConfig: peerAsClient}}
	if _, err := hc.Get(c.servers[0].ClientURL() + "/version"); err == nil {
		t.Fatal("a member's peer certificate was accepted on the client port")
	}
	ac, err := dcs.NewAdminClient(c.servers[0].PeerAddr(), p.admin())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if ms, err := ac.Members(ctx); err != nil || len(ms) != 2 || !strings.HasPrefix(ms[0].PeerURL, "https://") {
		t.Fatalf("members over peer TLS: %+v %v", ms, err)
	}
}
