package dcs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// TokenSignRequest is what a newcomer sends with its token: certificate
// requests for its peer and client ports (its keys stay with it).
type TokenSignRequest struct {
	ID          string   `json:"id"`
	Secret      string   `json:"secret"`
	Name        string   `json:"name"`
	Role        string   `json:"role"`
	PeerCSR     []byte   `json:"peer_csr"`
	ClientCSR   []byte   `json:"client_csr"`
	PeerHosts   []string `json:"peer_hosts"`
	ClientHosts []string `json:"client_hosts"`
}

// TokenSignResponse carries the signed chains and the CA certificates; for
// a data token, the CA keys too (a data member's host holds the CA).
type TokenSignResponse struct {
	PeerCert    []byte `json:"peer_cert"`
	ClientCert  []byte `json:"client_cert"`
	PeerCA      []byte `json:"peer_ca"`
	ClientCA    []byte `json:"client_ca"`
	PeerCAKey   []byte `json:"peer_ca_key,omitempty"`
	ClientCAKey []byte `json:"client_ca_key,omitempty"`
	// Credentials are the Patroni credentials files (base name to
	// content) of the signing member's host, for a data token only.
	Credentials map[string][]byte `json:"credentials,omitempty"`
}

// Bounds of the credentials a member hands over.
const (
	maxCredentialFiles = 64
	maxCredentialBytes = 64 << 10
)

// ReadCredentials reads the files glob matches, for a data newcomer.
func ReadCredentials(glob string) (map[string][]byte, error) {
	if glob == "" {
		return nil, nil
	}
	files, err := filepath.Glob(glob)
	if err != nil {
		return nil, err
	}
	if len(files) > maxCredentialFiles {
		return nil, fmt.Errorf("%d files match %s: at most %d", len(files), glob, maxCredentialFiles)
	}
	out := map[string][]byte{}
	for _, f := range files {
		fi, err := os.Lstat(f)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxCredentialBytes {
			continue // never follow a link; credentials are small files
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out[filepath.Base(f)] = b
	}
	return out, nil
}

// installCredentials writes the Patroni credentials a data token brought
// into the directory of l.Credentials, 0600, never replacing a file
// already there. It returns the files it wrote.
func (l *Local) installCredentials(resp *TokenSignResponse) ([]string, error) {
	if l.Credentials == "" || len(resp.Credentials) == 0 {
		return nil, nil
	}
	// The directory is Patroni's too (its configuration): traversable
	// parents, itself 0700 and the members' (and Patroni's) account's.
	dir := filepath.Dir(l.Credentials)
	var made []string
	if fresh(dir) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, err
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, err
		}
		made = append(made, dir)
		if err := l.own(dir); err != nil {
			return made, err
		}
	}
	for name, b := range resp.Credentials {
		if ok, _ := filepath.Match(filepath.Base(l.Credentials), name); !ok || name != filepath.Base(name) {
			return made, fmt.Errorf("the member sent a credentials file named %q, which patroni.credentialspath does not name", name)
		}
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if err := writeFile0600(p, b); err != nil {
			return made, err
		}
		made = append(made, p)
		if err := l.own(p); err != nil {
			return made, err
		}
	}
	return made, nil
}

// ErrFingerprint means the member dialled does not hold the CA the token
// pins: nothing was sent to it.
var ErrFingerprint = errors.New("the member does not present the cluster CA this token names (fingerprint mismatch): nothing was sent to it; check --peer and the token")

// pinnedTLS trusts only a peer whose chain holds a CA with fingerprint fp
// that signed its certificate. It checks in the handshake, before the
// client sends anything.
func pinnedTLS(fp string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true, //nolint:gosec // verified below, against the pinned CA
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrFingerprint
			}
			for _, c := range cs.PeerCertificates[1:] {
				sum := sha256.Sum256(c.Raw)
				if hex.EncodeToString(sum[:]) != fp || !c.IsCA {
					continue
				}
				pool := x509.NewCertPool()
				pool.AddCert(c)
				if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
					return fmt.Errorf("%w (%v)", ErrFingerprint, err)
				}
				return nil
			}
			return ErrFingerprint
		}}
}

// requestCertificates asks the member at peer, with token t, to sign the
// certificates of member cfg, and writes them into dir beside their keys.
// It returns the CA keys (PEM) when the token is a data token.
func requestCertificates(ctx context.Context, peer string, t Token, cfg Config, dir string) (*TokenSignResponse, error) {
	req := TokenSignRequest{ID: t.ID, Secret: t.Secret, Name: cfg.Name, Role: cfg.Role,
		PeerHosts: []string{hostOf(cfg.PeerAddr())}, ClientHosts: []string{clientHostOf(cfg)}}
	keys := map[string]*ecdsa.PrivateKey{}
	for _, base := range []string{"peer", "client"} {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cfg.Name}}, k)
		if err != nil {
			return nil, err
		}
		csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
		if base == "peer" {
			req.PeerCSR = csr
		} else {
			req.ClientCSR = csr
		}
		keys[base] = k
	}
	raw, _ := json.Marshal(req)
	pc := NewPeerClient(peer, pinnedTLS(t.Fingerprint))
	defer pc.Close()
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := pc.Call(cctx, RPCTokenSign, raw)
	if err != nil {
		if errors.Is(err, ErrFingerprint) {
			return nil, ErrFingerprint
		}
		return nil, fmt.Errorf("join through %s: %w", peer, err)
	}
	var resp TokenSignResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("join through %s: %w", peer, err)
	}
	if err := MkdirPrivate(dir); err != nil {
		return nil, err
	}
	files := map[string][]byte{"peer.crt": resp.PeerCert, "client.crt": resp.ClientCert, PeerCAFile: resp.PeerCA, ClientCAFile: resp.ClientCA}
	for base, k := range keys {
		files[base+".key"] = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: mustMarshalKey(k)})
	}
	for f, b := range files {
		if err := writeFile0600(filepath.Join(dir, f), b); err != nil {
			return nil, err
		}
	}
	return &resp, nil
}

// installCA writes the CA a data token brought into p.Dir.
func (p PKI) installCA(resp *TokenSignResponse) error {
	if len(resp.PeerCAKey) == 0 || len(resp.ClientCAKey) == 0 {
		return errors.New("the member sent no CA key with a data token")
	}
	if err := MkdirPrivate(p.Dir); err != nil {
		return err
	}
	for f, b := range map[string][]byte{PeerCAFile: resp.PeerCA, peerCAKey: resp.PeerCAKey, ClientCAFile: resp.ClientCA, clientCAKey: resp.ClientCAKey} {
		if err := writeFile0600(filepath.Join(p.Dir, f), b); err != nil {
			return err
		}
	}
	return nil
}

// consumeToken tells the member at peer, with the new member's own
// certificate, that its token served.
func consumeToken(ctx context.Context, peer string, t Token, cred TLSConfig) error {
	tc, err := cred.Client()
	if err != nil {
		return err
	}
	pc := NewPeerClient(peer, tc)
	defer pc.Close()
	raw, _ := json.Marshal(t.ID)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = pc.Call(cctx, RPCTokenDone, raw)
	return err
}
