package dcs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"
)

// TLSConfig names the PEM files that secure a port. An empty Cert means
// plain TCP. When CA is set, the server demands and verifies client
// certificates signed by it, and the member's own outgoing connections
// verify their peers against it.
type TLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	CA   string `yaml:"ca"`
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.Cert != "" }

func (t TLSConfig) validate(what string) error {
	if t.Cert == "" && (t.Key != "" || t.CA != "") {
		return fmt.Errorf("%s tls: cert is required when key or ca is set", what)
	}
	if t.Cert != "" && t.Key == "" {
		return fmt.Errorf("%s tls: key is required with cert %s", what, t.Cert)
	}
	return nil
}

// Server builds the server side. nextProtos is the ALPN list.
func (t TLSConfig) Server(nextProtos ...string) (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	cert, err := t.load()
	if err != nil {
		return nil, err
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: nextProtos}
	if t.CA != "" {
		pool, err := loadPool(t.CA)
		if err != nil {
			return nil, err
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// Client builds the client side used between members (and by the admin
// client): it presents the member's certificate and trusts CA.
func (t TLSConfig) Client() (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	cert, err := t.load()
	if err != nil {
		return nil, err
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.CA != "" {
		pool, err := loadPool(t.CA)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	return c, nil
}

// load reads the key pair, refusing a certificate that has expired: the
// other side would refuse it in the handshake with a vaguer error.
func (t TLSConfig) load() (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return cert, fmt.Errorf("load certificate %s: %w", t.Cert, err)
	}
	if cert.Leaf != nil && time.Now().After(cert.Leaf.NotAfter) {
		return cert, fmt.Errorf("certificate %s expired on %s: renew it with `pgherd dcs cert renew` on its member's host", t.Cert, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return cert, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA %s: %w", file, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA %s holds no PEM certificate", file)
	}
	return pool, nil
}
