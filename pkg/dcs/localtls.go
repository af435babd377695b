package dcs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"
)

// On a host, the cluster's credentials live under Local.Dir:
//
//	ca/       both CAs with their keys (a data member's host only)
//	admin/    the administrator's credential: peer.{crt,key} for peer
//	          ports, client.{crt,key} for client ports (etcdctl, pgherd's
//	          own reads), both CA certificates (a data member's host only)
//	tls/NAME/ member NAME's own credentials (MemberTLS) and, for a data
//	          member, Patroni's client certificate patroni.{crt,key}
//
// Every file is 0600 and every directory 0700, owned by the members'
// account.

// CreateToken mints a join token on this host (dcs/token.go): the host
// must hold the cluster's CA.
func (l *Local) CreateToken(role string, ttl time.Duration) (Token, time.Time, error) {
	pki := l.PKI()
	if !pki.Exists() {
		return Token{}, time.Time{}, fmt.Errorf("%w (%s): create tokens on a host of one of its data members", ErrNoCA, pki.Dir)
	}
	ca, err := pki.Load(true)
	if err != nil {
		return Token{}, time.Time{}, err
	}
	t, exp, err := TokenStore{Dir: pki.Dir}.Create(role, ttl, ca.Fingerprint())
	if err != nil {
		return t, exp, err
	}
	return t, exp, l.ownTree(pki.Dir)
}

// PKI returns this host's copy of the cluster's authorities.
func (l *Local) PKI() PKI { return PKI{Dir: filepath.Join(l.Dir, "ca")} }

// TLSDir is where member name's credentials live.
func (l *Local) TLSDir(name string) string { return filepath.Join(l.Dir, "tls", name) }

func (l *Local) adminDir() string { return filepath.Join(l.Dir, "admin") }

// AdminTLS is the administrator's credential for peer ports, which only a
// data member's host holds; ok is false when this host has none.
func (l *Local) AdminTLS() (TLSConfig, bool) {
	peer, _ := MemberTLS(l.adminDir())
	if _, err := os.Stat(peer.Key); err != nil {
		return TLSConfig{}, false
	}
	return peer, true
}

// AdminClientTLS is the administrator's etcd client credential (what
// `pgherd dcs env` hands etcdctl): the client CA, a client certificate
// and its key.
func (l *Local) AdminClientTLS() (TLSConfig, bool) {
	d := l.adminDir()
	t := TLSConfig{Cert: filepath.Join(d, "etcd.crt"), Key: filepath.Join(d, "etcd.key"), CA: filepath.Join(d, ClientCAFile)}
	if _, err := os.Stat(t.Key); err != nil {
		return TLSConfig{}, false
	}
	return t, true
}

// PatroniTLS is Patroni's etcd client credential beside member name.
func (l *Local) PatroniTLS(name string) TLSConfig {
	d := l.TLSDir(name)
	return TLSConfig{Cert: filepath.Join(d, "patroni.crt"), Key: filepath.Join(d, "patroni.key"), CA: filepath.Join(d, ClientCAFile)}
}

// IssuePatroni writes Patroni's client certificate beside data member name.
func (l *Local) IssuePatroni(name string) (TLSConfig, error) {
	if err := l.PKI().IssueClient(l.TLSDir(name), "patroni", "patroni-"+name); err != nil {
		return TLSConfig{}, fmt.Errorf("issue Patroni's DCS client certificate: %w", err)
	}
	return l.PatroniTLS(name), l.ownTree(l.TLSDir(name))
}

// ErrNoCA means this host cannot issue certificates for the cluster.
var ErrNoCA = errors.New("this host holds no CA of the DCS cluster")

// issueCredentials makes member cfg's certificates, and, for a new
// cluster, the cluster's CA; a data member's host also gets the
// administrator's credential. It fills cfg's TLS settings and returns
// the undo of what it made.
func (l *Local) issueCredentials(ctx context.Context, cfg *Config) (func(), error) {
	var made []string
	undo := func() {
		for i := len(made) - 1; i >= 0; i-- {
			os.RemoveAll(made[i])
		}
	}
	fail := func(err error) (func(), error) { undo(); return nil, err }
	for _, d := range []string{l.Dir, filepath.Join(l.Dir, "tls")} {
		if fresh(d) {
			made = append(made, d)
		}
	}
	pki := l.PKI()
	dir := l.TLSDir(cfg.Name)
	if _, err := os.Stat(dir); err == nil {
		return fail(fmt.Errorf("%s already exists: remove what is left of an earlier member %s first", dir, cfg.Name))
	}
	switch {
	case len(cfg.Join) > 0 && l.JoinToken != "":
		// Trust comes from the token, even where this host holds the CA.
		t, err := ParseToken(l.JoinToken)
		if err != nil {
			return fail(err)
		}
		made = append(made, dir)
		resp, err := requestCertificates(ctx, cfg.Join[0], t, *cfg, dir)
		if err != nil {
			return fail(err)
		}
		if cfg.Role == RoleData && !pki.Exists() {
			if fresh(pki.Dir) {
				made = append(made, pki.Dir)
			}
			if err := pki.installCA(resp); err != nil {
				return fail(err)
			}
		}
		if cfg.Role == RoleData {
			files, err := l.installCredentials(resp)
			made = append(made, files...)
			if err != nil {
				return fail(err)
			}
		}
	case !pki.Exists() && len(cfg.Join) > 0:
		return fail(fmt.Errorf("%w (%s): give --token (`pgherd dcs token create` on a data member's host prints one), or run this command on a host of one of its data members", ErrNoCA, pki.Dir))
	default:
		if !pki.Exists() {
			if fresh(pki.Dir) {
				made = append(made, pki.Dir)
			}
			if err := pki.Create(cfg.Name); err != nil {
				return fail(fmt.Errorf("create the cluster's CA: %w", err))
			}
		}
		made = append(made, dir)
		if err := pki.IssueMember(dir, cfg.Name, cfg.Role, []string{hostOf(cfg.PeerAddr())}, []string{clientHostOf(*cfg)}); err != nil {
			return fail(fmt.Errorf("issue the certificates of member %s: %w", cfg.Name, err))
		}
	}
	if cfg.Role == RoleData && pki.Exists() {
		cfg.CADir = pki.Dir
	}
	if _, ok := l.AdminTLS(); !ok && cfg.Role == RoleData {
		made = append(made, l.adminDir())
		if err := l.IssueAdmin(); err != nil {
			return fail(fmt.Errorf("issue the administrator's credential: %w", err))
		}
	}
	for _, d := range []string{pki.Dir, dir, l.adminDir(), filepath.Dir(dir)} {
		if err := l.ownTree(d); err != nil {
			return fail(err)
		}
	}
	cfg.PeerTLS, cfg.ClientTLS = MemberTLS(dir)
	return undo, nil
}

// IssueAdmin writes the administrator's credential on this host, which
// must hold the cluster's CA (a data member's host).
func (l *Local) IssueAdmin() error {
	pki := l.PKI()
	pca, err := pki.Load(true)
	if err != nil {
		return err
	}
	if err := pca.Issue(Leaf{Name: "pgherd-admin", Role: CertAdmin}, l.adminDir(), "peer", PeerCAFile); err != nil {
		return err
	}
	return pki.IssueClient(l.adminDir(), "etcd", "pgherd-admin")
}

// ownTree hands dir and what it holds to the members' account.
func (l *Local) ownTree(dir string) error {
	if l.User == nil {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return l.own(p)
	})
}

func fresh(dir string) bool {
	_, err := os.Stat(dir)
	return errors.Is(err, fs.ErrNotExist)
}

func hostOf(hostport string) string {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	return h
}

func clientHostOf(cfg Config) string {
	if cfg.AdvertiseClient != "" {
		return hostOfURL(cfg.AdvertiseClient)
	}
	return hostOf(cfg.ListenClient)
}

// RenewCerts reissues member name's certificates from this host's CA
// (same name, role and addresses, a new validity) and restarts the
// member, which reads its certificates only when it starts: one member at
// a time, the others keep the quorum. A witness's host holds no CA: renew
// there by removing the witness and adding it again with a token.
func (l *Local) RenewCerts(ctx context.Context, name string) ([]CertExpiry, error) {
	cfg, err := LoadConfig(l.ConfigFile(name))
	if err != nil {
		return nil, err
	}
	dir := l.TLSDir(name)
	if own, _ := MemberTLS(dir); cfg.PeerTLS.Cert != own.Cert {
		return nil, fmt.Errorf("member %s does not use certificates of the cluster's CA (%s): renew its own certificates yourself", name, cfg.PeerTLS.Cert)
	}
	pki := l.PKI()
	if !pki.Exists() {
		return nil, fmt.Errorf("%w (%s): renew on a data member's host; a witness is renewed by `pgherd witness remove` and `witness add --token`", ErrNoCA, pki.Dir)
	}
	if err := pki.IssueMember(dir, name, cfg.Role, []string{hostOf(cfg.PeerAddr())}, []string{clientHostOf(cfg)}); err != nil {
		return nil, fmt.Errorf("renew the certificates of member %s: %w", name, err)
	}
	if err := l.ownTree(dir); err != nil {
		return nil, err
	}
	svc := l.service(name)
	if err := l.Services.Stop(ctx, svc); err != nil {
		return nil, fmt.Errorf("restart %s: %w", svc, err)
	}
	if err := l.Services.Start(ctx, svc); err != nil {
		return nil, fmt.Errorf("restart %s: %w", svc, err)
	}
	if _, err := l.waitReady(ctx, cfg); err != nil {
		return nil, fmt.Errorf("member %s, restarted with its new certificates: %w", name, err)
	}
	return cfg.CertExpiries()
}

// FetchTrust makes this host a data member's host with a data token, before
// its member exists: the member at peer signs certificates for name (kept
// nowhere: Setup, given the same token, asks again for the same name) and
// hands over the CA, from which this host issues the administrator's
// credential, and the Patroni credentials. It returns the undo of what it
// made. The token is consumed once Setup's join succeeded.
func (l *Local) FetchTrust(ctx context.Context, peer, name string) (func(), error) {
	t, err := ParseToken(l.JoinToken)
	if err != nil {
		return nil, err
	}
	pki := l.PKI()
	if pki.Exists() {
		return func() {}, nil
	}
	var made []string
	undo := func() {
		for i := len(made) - 1; i >= 0; i-- {
			os.RemoveAll(made[i])
		}
	}
	fail := func(err error) (func(), error) { undo(); return nil, err }
	for _, d := range []string{l.Dir, pki.Dir, l.adminDir()} {
		if fresh(d) {
			made = append(made, d)
		}
	}
	tmp := filepath.Join(l.Dir, ".join-"+name)
	defer os.RemoveAll(tmp)
	resp, err := requestCertificates(ctx, peer, t, Config{Name: name, Role: RoleData, ListenPeer: "127.0.0.1:0", ListenClient: "127.0.0.1:0"}, tmp)
	if err != nil {
		return fail(err)
	}
	if err := pki.installCA(resp); err != nil {
		return fail(err)
	}
	if err := l.IssueAdmin(); err != nil {
		return fail(err)
	}
	files, err := l.installCredentials(resp)
	made = append(made, files...)
	if err != nil {
		return fail(err)
	}
	for _, d := range []string{pki.Dir, l.adminDir()} {
		if err := l.ownTree(d); err != nil {
			return fail(err)
		}
	}
	return undo, nil
}
