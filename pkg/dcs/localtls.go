package dcs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/safefs"
	"github.com/pgherd/pgherd/pkg/service"
)

// On a host, the cluster's credentials live under Local.Dir:
//
//	ca/       both CAs with their keys (a data member's host only)
//	admin/    the administrator's credential: peer.{crt,key} for peer
//	          ports, client.{crt,key} for client ports (etcdctl, pgherd's
//	          own reads), both CA certificates (a data member's host only)
//	tls/NAME/ member NAME's own credentials (MemberTLS)
//	patroni/NAME/ the etcd client certificate patroni.{crt,key} of the
//	          Patroni beside data member NAME, with the client CA
//
// ca/, admin/ and credentials/ go with the last data member set up on the
// host (DropTrust).
//
// Every file is 0600 and every directory 0700 (the parents tls/ and
// patroni/ 0755). What the members use is owned by the members' account;
// patroni/NAME/ by PostgreSQL's (Local.PatroniUser), which Patroni runs
// as: it reads its own key and none of the members'.

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
	if role == RoleData {
		// A data newcomer receives the credentials from the members' copy.
		if err := l.ShareCredentials(); err != nil {
			return Token{}, time.Time{}, err
		}
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

// PatroniDir is where the etcd client credential of the Patroni beside
// data member name lives, apart from the member's own keys.
func (l *Local) PatroniDir(name string) string { return filepath.Join(l.Dir, "patroni", name) }

// PatroniTLS is Patroni's etcd client credential beside member name.
func (l *Local) PatroniTLS(name string) TLSConfig {
	d := l.PatroniDir(name)
	return TLSConfig{Cert: filepath.Join(d, "patroni.crt"), Key: filepath.Join(d, "patroni.key"), CA: filepath.Join(d, ClientCAFile)}
}

// IssuePatroni writes Patroni's client certificate beside data member
// name, in PatroniDir, owned by the account Patroni runs as.
func (l *Local) IssuePatroni(name string) (TLSConfig, error) {
	if err := l.PKI().IssueClient(l.PatroniDir(name), "patroni", "patroni-"+name); err != nil {
		return TLSConfig{}, fmt.Errorf("issue Patroni's DCS client certificate: %w", err)
	}
	return l.PatroniTLS(name), l.handOver(l.PatroniDir(name), l.PatroniUser)
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
		if err := pki.IssueMember(dir, cfg.Name, cfg.Role, PeerHosts(*cfg), ClientHosts(*cfg)); err != nil {
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

// DropTrust removes what only a data member's host holds once no data
// member but gone is set up on this host: the cluster's CAs with their
// keys and the join tokens (ca/), the administrator's credential (admin/)
// and the members' copy of the Patroni credentials (credentials/). The CA
// keys then live only where a data member runs; a witness that remains
// keeps its own certificates (tls/NAME/), which are all it uses, and a data
// member that joins this host again with a data token brings the CA back.
// A configuration that `dcs leave` kept counts as a data member set up
// here until it is deleted. Each directory is deleted through
// safefs.RemoveDir: not through a link at its name, nothing outside it
// whatever links the members' account planted inside, and only if it
// belongs to an account pgherd gives it to. It logs what it removed.
func (l *Local) DropTrust(ctx context.Context, gone string) error {
	cfgs, err := l.Configs()
	if err != nil {
		return err
	}
	for _, c := range cfgs {
		if c.Name != gone && c.Role != RoleWitness {
			return nil
		}
	}
	var removed []string
	for _, d := range []string{l.PKI().Dir, l.adminDir(), filepath.Join(l.Dir, "credentials")} {
		if _, err := os.Lstat(d); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := safefs.RemoveDir(d, l.ownedHere(d)); err != nil {
			return fmt.Errorf("no data member of the DCS is left on this host, but %s could not be removed: %w; remove it yourself", d, err)
		}
		removed = append(removed, d)
	}
	if len(removed) > 0 {
		logging.From(ctx).Info("no data member of the DCS is left on this host: removed what only a data member's host holds (the cluster's CA keys, the administrator's credential, the members' copy of the Patroni credentials)", "deleted", strings.Join(removed, " "))
	}
	return nil
}

// ownedHere approves a directory of Local.Dir that belongs to an account
// pgherd gives the members' files to (handOver): theirs, root's, or
// PostgreSQL's (members made before they had an account of their own).
func (l *Local) ownedHere(dir string) func(*os.Root, uint32) error {
	return func(_ *os.Root, owner uint32) error {
		if owner == 0 || owner == l.OwnerUID() || l.PatroniUser != nil && owner == l.PatroniUser.UID {
			return nil
		}
		return fmt.Errorf("%s belongs to uid %d, which pgherd gives none of the cluster's files: %w", dir, owner, safefs.ErrNotOurs)
	}
}

// ownTree hands dir and what it holds to the members' account.
func (l *Local) ownTree(dir string) error { return l.handOver(dir, l.User) }

// handOver hands dir and everything under it to u (nil: leave them the
// current user's) through safefs.Rehome, which follows no link: what root
// made there, and what the members ran as before they had an account of
// their own (PostgreSQL's, root's), becomes u's; anything else stops it.
func (l *Local) handOver(dir string, u *service.User) error {
	if u == nil {
		return nil
	}
	from := []uint32{0}
	if l.PatroniUser != nil {
		from = append(from, l.PatroniUser.UID)
	}
	return safefs.Rehome(dir, from, safefs.Owner{Name: u.Name, UID: u.UID, GID: u.GID, Chown: true})
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
	if err := l.legacyPatroni(); err != nil {
		return nil, err
	}
	if err := pki.IssueMember(dir, name, cfg.Role, PeerHosts(cfg), ClientHosts(cfg)); err != nil {
		return nil, fmt.Errorf("renew the certificates of member %s: %w", name, err)
	}
	if err := l.restartMember(ctx, cfg); err != nil {
		return nil, fmt.Errorf("%w (with its new certificates)", err)
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
