package dcs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/pgherd/pgherd/pkg/safefs"
)

// A cluster's trust is two certificate authorities, made by pgherd when
// the cluster is born (`dcs init`, the first `instance create` on the
// embedded DCS):
//
//   - the peer CA signs the certificates presented on peer ports: one per
//     member (name in CN and a URI SAN, role in OU) and the
//     administrator's (OU admin);
//   - the client CA signs the client ports' server certificates and the
//     certificates of etcd clients (Patroni's, the administrator's).
//
// Each port trusts only its own CA, so a client certificate (which every
// Patroni host holds) never opens a peer port, and a member's peer
// certificate is no client credential. The CA keys stay on the hosts of
// data members (CADir), 0600, owned by the members' account; they are
// never in the key-value store or its snapshots, and a witness's files
// hold only CA certificates.

// Certificate roles, the OU of a certificate's subject. A peer port binds
// a connection to the name (CN) and role of its certificate.
const (
	CertAdmin  = "admin"  // pgherd on a data member's host: may remove any member
	CertClient = "client" // an etcd client (Patroni, etcdctl): client port only
)

// Files of a credential directory (a member's, the administrator's).
const (
	PeerCAFile   = "peer-ca.crt"
	ClientCAFile = "client-ca.crt"
	peerCAKey    = "peer-ca.key"
	clientCAKey  = "client-ca.key"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 2 * 365 * 24 * time.Hour
	// clockSkew backdates certificates so that a host whose clock is a
	// little behind accepts them at once.
	clockSkew = time.Hour
)

// CA is one of a cluster's two authorities, loaded with its key.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// PKI is the cluster's authorities in directory Dir (on a data member's
// host, <prefix>/dcs/ca).
type PKI struct{ Dir string }

// Exists reports whether Dir holds both CA keys.
func (p PKI) Exists() bool {
	for _, f := range []string{peerCAKey, clientCAKey} {
		if _, err := os.Stat(filepath.Join(p.Dir, f)); err != nil {
			return false
		}
	}
	return true
}

// Create makes both authorities. It refuses to replace existing ones:
// every certificate of the cluster depends on them.
func (p PKI) Create(cluster string) error {
	if err := MkdirPrivate(p.Dir); err != nil {
		return err
	}
	for _, c := range []struct{ crt, key, what string }{{PeerCAFile, peerCAKey, "peer"}, {ClientCAFile, clientCAKey, "client"}} {
		if _, err := os.Stat(filepath.Join(p.Dir, c.key)); err == nil {
			return fmt.Errorf("%s already holds a %s CA: a cluster's CA is never replaced", p.Dir, c.what)
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			Subject:               pkix.Name{CommonName: "pgherd dcs " + c.what + " CA " + cluster, Organization: []string{"pgherd"}},
			IsCA:                  true,
			BasicConstraintsValid: true,
			MaxPathLenZero:        true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		}
		der, err := sign(tmpl, &key.PublicKey, tmpl, key, caValidity)
		if err != nil {
			return err
		}
		if err := writePEM(filepath.Join(p.Dir, c.key), "EC PRIVATE KEY", mustMarshalKey(key)); err != nil {
			return err
		}
		if err := writePEM(filepath.Join(p.Dir, c.crt), "CERTIFICATE", der); err != nil {
			return err
		}
	}
	return nil
}

// Load reads one authority: peer (true) or client (false).
func (p PKI) Load(peer bool) (*CA, error) {
	crt, key := ClientCAFile, clientCAKey
	if peer {
		crt, key = PeerCAFile, peerCAKey
	}
	ca := &CA{}
	var err error
	if ca.pem, err = os.ReadFile(filepath.Join(p.Dir, crt)); err != nil {
		return nil, fmt.Errorf("read the cluster's CA: %w", err)
	}
	if ca.cert, err = parseCert(ca.pem); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(p.Dir, crt), err)
	}
	raw, err := os.ReadFile(filepath.Join(p.Dir, key))
	if err != nil {
		return nil, fmt.Errorf("read the cluster's CA key: %w", err)
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		return nil, fmt.Errorf("%s holds no PEM key", filepath.Join(p.Dir, key))
	}
	if ca.key, err = x509.ParseECPrivateKey(b.Bytes); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(p.Dir, key), err)
	}
	return ca, nil
}

// Fingerprint is the SHA-256 of the CA certificate's DER, in hex: what
// a join token pins.
func (ca *CA) Fingerprint() string {
	s := sha256.Sum256(ca.cert.Raw)
	return hex.EncodeToString(s[:])
}

// Leaf describes a certificate to issue.
type Leaf struct {
	Name  string   // CN; a member's name, or the administrator's/a client's
	Role  string   // OU: RoleData, RoleWitness, CertAdmin or CertClient
	Hosts []string // IP or DNS SANs: every address the holder serves on
}

// Issue signs a new key pair for l and writes them to dir/base.crt and
// dir/base.key (0600), with the CA's certificate as dir/caFile. Member
// certificates serve and dial (server and client usage); the holder's
// name is also a URI SAN, pgherd://member/NAME.
func (ca *CA) Issue(l Leaf, dir, base, caFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := sign(leafTemplate(l), &key.PublicKey, ca.cert, ca.key, leafValidity)
	if err != nil {
		return err
	}
	if err := MkdirPrivate(dir); err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, base+".key"), "EC PRIVATE KEY", mustMarshalKey(key)); err != nil {
		return err
	}
	// The chain holds the CA too: a joiner with a token finds it there
	// and checks its fingerprint.
	if err := writeFile0600(filepath.Join(dir, base+".crt"), append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.pem...)); err != nil {
		return err
	}
	return writeFile0600(filepath.Join(dir, caFile), ca.pem)
}

// SignCSR issues a certificate for l to the key of a certificate request
// (PEM), which must be signed by that key. It returns the chain (the
// certificate, then the CA's) as PEM.
func (ca *CA) SignCSR(csrPEM []byte, l Leaf) ([]byte, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("no PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("certificate request: want an ECDSA key")
	}
	der, err := sign(leafTemplate(l), pub, ca.cert, ca.key, leafValidity)
	if err != nil {
		return nil, err
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.pem...), nil
}

// PEM is the CA's certificate.
func (ca *CA) PEM() []byte { return ca.pem }

// KeyPEM is the CA's private key, handed only to a data member that joins
// with a data token, over the peer port.
func (ca *CA) KeyPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: mustMarshalKey(ca.key)})
}

func leafTemplate(l Leaf) *x509.Certificate {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: l.Name, OrganizationalUnit: []string{l.Role}, Organization: []string{"pgherd"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{{Scheme: "pgherd", Host: "member", Path: "/" + l.Name}},
	}
	for _, h := range l.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl
}

func sign(tmpl *x509.Certificate, pub *ecdsa.PublicKey, parent *x509.Certificate, key *ecdsa.PrivateKey, valid time.Duration) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-clockSkew)
	tmpl.NotAfter = now.Add(valid)
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
}

func mustMarshalKey(k *ecdsa.PrivateKey) []byte {
	b, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		panic(err) // a P-256 key always marshals
	}
	return b
}

func writePEM(path, kind string, der []byte) error {
	return writeFile0600(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}))
}

func parseCert(raw []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(raw)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

// Identity is who a verified certificate names: a member (its name and
// role) or the administrator, or a client.
type Identity struct {
	Name string
	Role string
}

// IdentityOf reads the name and role a verified certificate carries.
func IdentityOf(c *x509.Certificate) Identity {
	id := Identity{Name: c.Subject.CommonName}
	if len(c.Subject.OrganizationalUnit) == 1 {
		id.Role = c.Subject.OrganizationalUnit[0]
	}
	return id
}

// MemberTLS is where a member's credentials live on its host: dir holds
// peer.{crt,key} (its peer port), client.{crt,key} (its client port's
// server certificate) and both CA certificates.
func MemberTLS(dir string) (peer, client TLSConfig) {
	return TLSConfig{Cert: filepath.Join(dir, "peer.crt"), Key: filepath.Join(dir, "peer.key"), CA: filepath.Join(dir, PeerCAFile)},
		TLSConfig{Cert: filepath.Join(dir, "client.crt"), Key: filepath.Join(dir, "client.key"), CA: filepath.Join(dir, ClientCAFile)}
}

// IssueMember writes a member's credentials into dir: a peer certificate
// for its advertised peer host and a client-port certificate for its
// client host, each naming the member with its role.
func (p PKI) IssueMember(dir, name, role string, peerHosts, clientHosts []string) error {
	pca, err := p.Load(true)
	if err != nil {
		return err
	}
	cca, err := p.Load(false)
	if err != nil {
		return err
	}
	if err := pca.Issue(Leaf{Name: name, Role: role, Hosts: peerHosts}, dir, "peer", PeerCAFile); err != nil {
		return err
	}
	return cca.Issue(Leaf{Name: name, Role: role, Hosts: clientHosts}, dir, "client", ClientCAFile)
}

// IssueClient writes an etcd client certificate (Patroni's, the
// administrator's) into dir as base.{crt,key} beside the client CA.
func (p PKI) IssueClient(dir, base, name string) error {
	cca, err := p.Load(false)
	if err != nil {
		return err
	}
	return cca.Issue(Leaf{Name: name, Role: CertClient}, dir, base, ClientCAFile)
}

// CertExpiry is when one of a member's certificates expires.
type CertExpiry struct {
	Port    string    `json:"port"` // peer or client
	File    string    `json:"file"`
	Expires time.Time `json:"expires"`
}

// CertExpiries reads when the member's certificates expire (none on plain
// TCP).
func (c Config) CertExpiries() ([]CertExpiry, error) {
	var out []CertExpiry
	for _, t := range []struct {
		port string
		tls  TLSConfig
	}{{"peer", c.PeerTLS}, {"client", c.ClientTLS}} {
		if !t.tls.Enabled() {
			continue
		}
		raw, err := os.ReadFile(t.tls.Cert)
		if err != nil {
			return nil, err
		}
		cert, err := parseCert(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.tls.Cert, err)
		}
		out = append(out, CertExpiry{Port: t.port, File: t.tls.Cert, Expires: cert.NotAfter.UTC()})
	}
	return out, nil
}

// writeFile0600 writes path atomically, mode 0600, in a private directory
// it makes if need be.
func writeFile0600(path string, data []byte) error {
	if err := MkdirPrivate(filepath.Dir(path)); err != nil {
		return err
	}
	return safefs.WriteOwned(path, data, safefs.Owner{})
}
