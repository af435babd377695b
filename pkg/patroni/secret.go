package patroni

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/pgherd/pgherd/pkg/safefs"
)

// Secret is a password. It reaches Patroni's YAML and the credentials file
// (both 0600) unchanged, but prints, logs and encodes to JSON as "********",
// so a Config can be logged or shown with -o json without leaking it.
type Secret string

const masked = "********"

// Reveal returns the password itself, for the few places that must send it
// (the REST client's basic auth, Patroni's YAML).
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer with a mask.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return masked
}

// GoString masks %#v too.
func (s Secret) GoString() string { return s.String() }

// LogValue implements slog.LogValuer with a mask.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON masks the password in any JSON pgherd prints.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// GeneratePassword returns 24 random bytes from crypto/rand, URL-safe base64
// encoded (32 characters, no quoting needed in YAML, pgpass or URLs).
func GeneratePassword() (Secret, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("cannot generate a password: %w", err)
	}
	return Secret(base64.RawURLEncoding.EncodeToString(b)), nil
}

// Credentials are the passwords one Patroni cluster shares: every member must
// use the same superuser, replication and rewind passwords (the first member
// creates the roles, the others clone its data directory and connect with
// them), and the REST API password lets pgherd change the cluster through
// any member.
type Credentials struct {
	Superuser   Secret `yaml:"superuser"`
	Replication Secret `yaml:"replication"`
	Rewind      Secret `yaml:"rewind"`
	RestAPI     Secret `yaml:"restapi"`
}

// GenerateCredentials returns four fresh random passwords.
func GenerateCredentials() (Credentials, error) {
	var c Credentials
	for _, p := range []*Secret{&c.Superuser, &c.Replication, &c.Rewind, &c.RestAPI} {
		s, err := GeneratePassword()
		if err != nil {
			return Credentials{}, err
		}
		*p = s
	}
	return c, nil
}

func (c Credentials) all() []string {
	return []string{c.Superuser.Reveal(), c.Replication.Reveal(), c.Rewind.Reveal(), c.RestAPI.Reveal()}
}

// ReadCredentials reads a file written by WriteCredentials. It refuses a
// file that others can read, or one with a missing password.
func ReadCredentials(path string) (Credentials, error) {
	f, err := safefs.Open(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("cannot read Patroni credentials: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Credentials{}, fmt.Errorf("cannot read Patroni credentials: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return Credentials{}, fmt.Errorf("Patroni credentials file %s has mode %04o: run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return Credentials{}, fmt.Errorf("cannot read Patroni credentials: %w", err)
	}
	var c Credentials
	if err := yaml.Unmarshal(b, &c); err != nil {
		// yaml's message may quote the file's content: do not pass it on.
		return Credentials{}, fmt.Errorf("Patroni credentials file %s is not valid YAML", path)
	}
	if c.Superuser == "" || c.Replication == "" || c.Rewind == "" || c.RestAPI == "" {
		return Credentials{}, fmt.Errorf("Patroni credentials file %s lacks one of superuser, replication, rewind, restapi", path)
	}
	return c, nil
}

// WriteCredentials writes c to path atomically with mode 0600, owned by
// owner when it is not nil.
func WriteCredentials(path string, c Credentials, owner *Owner) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("cannot encode Patroni credentials: %w", err)
	}
	return writeOwned(path, b, owner)
}

// LoadOrCreateCredentials reads path, or generates new credentials and writes
// them there (owned by owner when not nil) when it does not exist. The
// boolean says whether they are new.
func LoadOrCreateCredentials(path string, owner *Owner) (Credentials, bool, error) {
	c, err := ReadCredentials(path)
	if err == nil {
		return c, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Credentials{}, false, err
	}
	if c, err = GenerateCredentials(); err != nil {
		return Credentials{}, false, err
	}
	if err := WriteCredentials(path, c, owner); err != nil {
		return Credentials{}, false, err
	}
	return c, true, nil
}

// Owner is the system user that must own a file pgherd writes for Patroni
// (Patroni runs as that user and reads its 0600 files).
type Owner struct{ UID, GID int }

// writeOwned writes data as safefs.WriteOwned does (a new 0600 file
// beside path, synced, renamed over it), given to owner when there is one.
func writeOwned(path string, data []byte, owner *Owner) error {
	o := safefs.Owner{Chown: owner != nil}
	if owner != nil {
		o.UID, o.GID = uint32(owner.UID), uint32(owner.GID)
	}
	return safefs.WriteOwned(path, data, o)
}
