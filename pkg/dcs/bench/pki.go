package bench

import (
	"crypto/tls"
	"fmt"
	"path/filepath"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// benchPKI holds the certificates of a TLS run, made with pgherd's own
// authorities: the peer CA signs every member's peer certificate (etcd's
// and pgherd's alike), the client CA the client ports' certificates and
// the bench's client certificate. A nil *benchPKI is a plain run.
type benchPKI struct {
	pki    dcs.PKI
	dir    string
	client *tls.Config
}

func newBenchPKI(dir string) (*benchPKI, error) {
	b := &benchPKI{pki: dcs.PKI{Dir: filepath.Join(dir, "ca")}, dir: dir}
	if err := b.pki.Create("bench"); err != nil {
		return nil, fmt.Errorf("make the bench's CAs: %w", err)
	}
	cdir := filepath.Join(dir, "client")
	if err := b.pki.IssueClient(cdir, "bench", "bench"); err != nil {
		return nil, fmt.Errorf("issue the bench's client certificate: %w", err)
	}
	var err error
	b.client, err = dcs.TLSConfig{Cert: filepath.Join(cdir, "bench.crt"), Key: filepath.Join(cdir, "bench.key"), CA: filepath.Join(cdir, dcs.ClientCAFile)}.Client()
	return b, err
}

// member issues the peer and client-port certificates of member name, for
// 127.0.0.1.
func (b *benchPKI) member(name string) (peer, client dcs.TLSConfig, err error) {
	dir := filepath.Join(b.dir, name)
	if err := b.pki.IssueMember(dir, name, dcs.RoleData, []string{"127.0.0.1"}, []string{"127.0.0.1"}); err != nil {
		return peer, client, fmt.Errorf("issue the certificates of %s: %w", name, err)
	}
	peer, client = dcs.MemberTLS(dir)
	return peer, client, nil
}

// clientTLS is the bench clients' TLS configuration, nil on a plain run.
func (b *benchPKI) clientTLS() *tls.Config {
	if b == nil {
		return nil
	}
	return b.client
}
