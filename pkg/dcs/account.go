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

// ShareCredentials brings the members' copies of this host's Patroni
// credentials files (Local.Credentials, PostgreSQL's account's, which the
// members' account cannot read) in line with those files: each file is
// copied to <Dir>/credentials/, 0600, the members' account's (a data
// member hands them to a data newcomer with a token), and a copy whose
// file is gone (its cluster purged) is removed, so that its secrets stay
// nowhere on this host. Root reads each file without following a link,
// only if root or PostgreSQL's account owns it (readCredentials), and
// replaces each copy atomically. The members' account owns the copies'
// directory, not the path to it (an entry of root's Dir): a link it
// plants there is replaced or removed, never followed. Nothing to do when
// the members run as the current user.
func (l *Local) ShareCredentials() error {
	if l.User == nil || l.Credentials == "" {
		return nil
	}
	files, err := filepath.Glob(l.Credentials)
	if err != nil {
		return err
	}
	dir := filepath.Dir(l.sharedCredentials())
	if len(files) > 0 {
		if err := MkdirPrivate(dir); err != nil {
			return err
		}
		if err := l.own(dir); err != nil {
			return err
		}
	}
	shared := map[string]bool{}
	owner := safefs.Owner{Name: l.User.Name, UID: l.User.UID, GID: l.User.GID, Chown: true}
	for _, f := range files {
		b, err := l.readCredentials(f)
		if err != nil {
			return fmt.Errorf("share the Patroni credentials with the DCS members: %w", err)
		}
		if err := safefs.WriteOwned(filepath.Join(dir, filepath.Base(f)), b, owner); err != nil {
			return err
		}
		shared[filepath.Base(f)] = true
	}
	// filepath.Glob lists a link as a name, and os.Remove removes the
	// link itself.
	copies, err := filepath.Glob(l.sharedCredentials())
	if err != nil {
		return err
	}
	for _, c := range copies {
		if shared[filepath.Base(c)] {
			continue
		}
		if err := os.Remove(c); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove the DCS members' copy of Patroni credentials that are gone: %w; remove it yourself", err)
		}
	}
	return nil
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
