package dcs

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
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
