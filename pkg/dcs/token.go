package dcs

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgherd/pgherd/pkg/safefs"
)

// A join token lets a host that holds none of the cluster's files add a
// member: `pgherd dcs token create` prints
//
//	pgherd1.ID.SECRET.FINGERPRINT
//
// ID names the token, SECRET (128 random bits) proves it, FINGERPRINT is
// the SHA-256 of the cluster's peer CA certificate. The joiner checks, in
// the TLS handshake and before it sends a byte, that the member it dials
// presents a certificate chain holding a CA with that fingerprint which
// signed the member's certificate (kubeadm's discovery-token-ca-cert-hash).
// Then it sends certificate requests (its private keys never travel) with
// the token; the member signs them if the token is known, unexpired,
// unused and of the role asked for. A token is consumed only when the
// joiner, now a member, says so with its new certificate: a failed join
// leaves it usable again, by the same name only.
//
// Tokens live on the host of the member that minted them, hashed
// (SHA-256 of the secret) with their role and expiry, in tokens.json in
// the CA's directory: only that member (any member on that host) accepts
// them. They never enter the Raft log or the key-value store.

// TokenPrefix starts every join token.
const TokenPrefix = "pgherd1."

// DefaultTokenTTL is how long a token is valid unless asked otherwise.
const DefaultTokenTTL = time.Hour

// Token is a parsed join token.
type Token struct {
	ID, Secret, Fingerprint string
}

// String is the token as printed.
func (t Token) String() string { return TokenPrefix + t.ID + "." + t.Secret + "." + t.Fingerprint }

// ParseToken reads a token as `dcs token create` prints it.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimPrefix(strings.TrimSpace(s), TokenPrefix), ".")
	if !strings.HasPrefix(strings.TrimSpace(s), TokenPrefix) || len(parts) != 3 || len(parts[0]) != 16 || len(parts[1]) != 32 || len(parts[2]) != 64 {
		return Token{}, errors.New("not a pgherd join token (pgherd1.ID.SECRET.FINGERPRINT, as `pgherd dcs token create` prints it)")
	}
	for _, p := range parts {
		if _, err := hex.DecodeString(p); err != nil {
			return Token{}, errors.New("not a pgherd join token: its parts are hexadecimal")
		}
	}
	return Token{ID: parts[0], Secret: parts[1], Fingerprint: parts[2]}, nil
}

// storedToken is one token as the minting host keeps it.
type storedToken struct {
	ID      string    `json:"id"`
	Hash    string    `json:"sha256"` // of the secret
	Role    string    `json:"role"`
	Expires time.Time `json:"expires"`
	// Name is the member the token signed certificates for: from then on
	// only that name may use it again (a join that failed).
	Name string `json:"name,omitempty"`
	Used bool   `json:"used,omitempty"`
}

// TokenStore is the tokens.json file in a CA directory. Its methods are
// safe across goroutines and processes (an flock on the file's lock).
type TokenStore struct{ Dir string }

var tokenMu sync.Mutex

func (s TokenStore) file() string { return filepath.Join(s.Dir, "tokens.json") }

// update runs f on the tokens under a lock and writes them back (0600)
// when f returns true; expired tokens are dropped.
func (s TokenStore) update(f func(map[string]*storedToken) (bool, error)) error {
	tokenMu.Lock()
	defer tokenMu.Unlock()
	// The CA directory may belong to the members' account, and root mints
	// tokens: never follow a link planted there.
	lock, err := os.OpenFile(filepath.Join(s.Dir, "tokens.lock"), os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	ts := map[string]*storedToken{}
	if raw, err := safefs.ReadFile(s.file()); err == nil {
		if err := json.Unmarshal(raw, &ts); err != nil {
			return fmt.Errorf("%s: %w", s.file(), err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for id, t := range ts {
		if time.Now().After(t.Expires.Add(24 * time.Hour)) {
			delete(ts, id)
		}
	}
	write, err := f(ts)
	if err != nil || !write {
		return err
	}
	raw, _ := json.MarshalIndent(ts, "", "  ")
	return writeFile0600(s.file(), raw)
}

// Create mints a token for role valid for ttl, pinned to the peer CA
// whose fingerprint is given.
func (s TokenStore) Create(role string, ttl time.Duration, fingerprint string) (Token, time.Time, error) {
	if role != RoleData && role != RoleWitness {
		return Token{}, time.Time{}, fmt.Errorf("token role %q: use %s or %s", role, RoleData, RoleWitness)
	}
	if ttl <= 0 || ttl > 7*24*time.Hour {
		return Token{}, time.Time{}, fmt.Errorf("token ttl %s: want more than 0 and at most 168h", ttl)
	}
	id, secret := make([]byte, 8), make([]byte, 16)
	rand.Read(id)
	rand.Read(secret)
	t := Token{ID: hex.EncodeToString(id), Secret: hex.EncodeToString(secret), Fingerprint: fingerprint}
	exp := time.Now().Add(ttl).Truncate(time.Second)
	err := s.update(func(ts map[string]*storedToken) (bool, error) {
		ts[t.ID] = &storedToken{ID: t.ID, Hash: hashSecret(t.Secret), Role: role, Expires: exp}
		return true, nil
	})
	return t, exp, err
}

func hashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// Errors of a token check; their text is what the joiner reads.
var (
	ErrTokenUnknown = errors.New("join token refused: it is not one this member minted (wrong token, or ask the member that printed it)")
	ErrTokenExpired = errors.New("join token refused: it has expired; create a new one with `pgherd dcs token create`")
	ErrTokenUsed    = errors.New("join token refused: it was already used; create a new one with `pgherd dcs token create`")
)

// Reserve checks a token for member name with role and binds it to name;
// it is not consumed yet (Consume does that once the join succeeded).
func (s TokenStore) Reserve(id, secret, name, role string) error {
	return s.update(func(ts map[string]*storedToken) (bool, error) {
		t := ts[id]
		if t == nil || subtle.ConstantTimeCompare([]byte(t.Hash), []byte(hashSecret(secret))) != 1 {
			return false, ErrTokenUnknown
		}
		switch {
		case t.Used:
			return false, ErrTokenUsed
		case time.Now().After(t.Expires):
			return false, ErrTokenExpired
		case t.Role != role:
			return false, fmt.Errorf("join token refused: it admits a %s member, not a %s one; create one with `pgherd dcs token create --role %s`", t.Role, role, role)
		case t.Name != "" && t.Name != name:
			return false, fmt.Errorf("join token refused: it was already used to sign member %s's certificates", t.Name)
		}
		t.Name = name
		return true, nil
	})
}

// Consume marks the token reserved for name as used.
func (s TokenStore) Consume(id, name string) error {
	return s.update(func(ts map[string]*storedToken) (bool, error) {
		t := ts[id]
		if t == nil || t.Name != name {
			return false, ErrTokenUnknown
		}
		t.Used = true
		return true, nil
	})
}
