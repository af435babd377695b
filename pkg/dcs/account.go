package dcs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"gopkg.in/yaml.v3"

	"github.com/pgherd/pgherd/pkg/safefs"
)

// Members run under an account of their own (Local.User, site setting
// patroni.dcs.embedded.sysuser) when pgherd runs as root. Members made
// before ran as PostgreSQL's account (or as root, on a host without one)
// and their files are that account's: root hands them over when it next
// starts the member (Start, RenewCerts), through safefs.Rehome, which
// follows no link the old account could have planted. One layout cannot
// be handed over: Patroni's DCS certificate used to sit among the
// member's keys (tls/NAME/patroni.*), and the Patroni YAML names it
// there; that is refused (legacyPatroni) rather than leaving Patroni
// without its key.

// adopt hands member cfg's files (its configuration's group, the host's CA and administrator's
// credential, the members' certificates, cfg's data and snapshot
// directories) to the members' account, when it is not already theirs.
func (l *Local) adopt(cfg Config) error {
	if l.User == nil {
		return nil
	}
	if err := l.legacyPatroni(); err != nil {
		return err
	}
	// Its configuration stays root's, readable by the account's group.
	if err := l.protect(l.ConfigFile(cfg.Name)); err != nil {
		return err
	}
	if cfg.Credentials != "" && cfg.Credentials != l.sharedCredentials() {
		if err := l.ShareCredentials(); err != nil {
			return err
		}
		if err := l.setConfig(cfg.Name, "credentials", l.sharedCredentials()); err != nil {
			return err
		}
	}
	dirs := []string{l.PKI().Dir, l.adminDir(), filepath.Join(l.Dir, "tls"), cfg.DataDir}
	if cfg.Snapshots.Dir != "" {
		dirs = append(dirs, cfg.Snapshots.Dir)
	}
	for _, d := range dirs {
		if err := l.ownTree(d); err != nil {
			return fmt.Errorf("member %s: hand its files to %s: %w", cfg.Name, l.User.Name, err)
		}
	}
	return nil
}

// legacyPatroni refuses a host where a Patroni's DCS credential sits in a
// member's certificate directory that is not the members' account's.
func (l *Local) legacyPatroni() error {
	if l.User == nil {
		return nil
	}
	keys, _ := filepath.Glob(filepath.Join(l.Dir, "tls", "*", "patroni.key"))
	for _, k := range keys {
		fi, err := os.Lstat(filepath.Dir(k))
		if err != nil || fi.Sys().(*syscall.Stat_t).Uid == l.User.UID {
			continue
		}
		name := filepath.Base(filepath.Dir(k))
		return fmt.Errorf("member %s was set up before DCS members had an account of their own, and its Patroni's DCS key (%s) sits among the member's keys: keep its members under PostgreSQL's account with `patroni.dcs.embedded.sysuser: <sysuser>` in site.yaml, or drop and create the instance again", name, k)
	}
	return nil
}

// sharedCredentials matches the members' copies of this host's Patroni
// credentials files (ShareCredentials), or the files themselves when the
// members run as the current user.
func (l *Local) sharedCredentials() string {
	if l.User == nil || l.Credentials == "" {
		return l.Credentials
	}
	return filepath.Join(l.Dir, "credentials", filepath.Base(l.Credentials))
}

// ShareCredentials copies this host's Patroni credentials files
// (Local.Credentials, PostgreSQL's account's, which the members' account
// cannot read) to <Dir>/credentials/, 0600, the members' account's: a
// data member hands them to a data newcomer with a token. Root reads each
// file without following a link, only if PostgreSQL's account owns it
// (safefs.ReadOwned), and replaces each copy atomically. Nothing to do
// when the members run as the current user.
func (l *Local) ShareCredentials() error {
	if l.User == nil || l.Credentials == "" {
		return nil
	}
	files, err := filepath.Glob(l.Credentials)
	if err != nil || len(files) == 0 {
		return err
	}
	dir := filepath.Dir(l.sharedCredentials())
	if err := MkdirPrivate(dir); err != nil {
		return err
	}
	if err := l.own(dir); err != nil {
		return err
	}
	for _, f := range files {
		b, err := l.readCredentials(f)
		if err != nil {
			return fmt.Errorf("share the Patroni credentials with the DCS members: %w", err)
		}
		owner := safefs.Owner{Name: l.User.Name, UID: l.User.UID, GID: l.User.GID, Chown: true}
		if err := safefs.WriteOwned(filepath.Join(dir, filepath.Base(f)), b, owner); err != nil {
			return err
		}
	}
	return nil
}

// ForgetCredentials removes the members' copy (ShareCredentials) of
// Patroni credentials file file, once the cluster it belongs to is purged:
// its secrets then stay nowhere on this host. The copies' directory is an
// entry of root's Dir, so what is removed is the copy, or a link the
// members' account planted in its place, never what a link points at.
func (l *Local) ForgetCredentials(file string) error {
	if l.User == nil || l.Credentials == "" {
		return nil
	}
	err := os.Remove(filepath.Join(filepath.Dir(l.sharedCredentials()), filepath.Base(file)))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// readCredentials reads a Patroni credentials file as safefs.Open opens
// it (no link, a regular file with one name), owned by root or by
// PostgreSQL's account: nothing a link or another account planted.
func (l *Local) readCredentials(file string) ([]byte, error) {
	return safefs.ReadChecked(file, safefs.ReadRule{Max: maxCredentialBytes, Accept: func(st *syscall.Stat_t) error {
		if st.Uid != 0 && (l.PatroniUser == nil || st.Uid != l.PatroniUser.UID) {
			return fmt.Errorf("%s belongs to uid %d, neither root nor PostgreSQL's account: not sharing it with the DCS members; fix its owner", file, st.Uid)
		}
		return nil
	}})
}

// setConfig sets key to value in member name's configuration, keeping
// the rest of it as written.
func (l *Local) setConfig(name, key, value string) error {
	file := l.ConfigFile(name)
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	m := map[string]any{}
	if err := yaml.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	m[key] = value
	if raw, err = yaml.Marshal(m); err != nil {
		return err
	}
	return l.writeConfig(file, raw)
}
