package dcs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"gopkg.in/yaml.v3"
)

// Restore sets up member cfg on this host as the only member of a NEW
// cluster whose state is the snapshot file (written by `pgherd dcs
// snapshot save` or `etcdctl snapshot save`): the same keys at the same
// revisions, leases included, under a new cluster ID, so that no member of
// the old cluster can take it for its own. The other members join it
// again with `pgherd dcs join`. A truncated or damaged file, or one that
// is not a snapshot, is refused before anything is created; if a later
// step fails, Setup undoes everything.
func (l *Local) Restore(ctx context.Context, cfg Config, file string) (MemberInfo, error) {
	if len(cfg.Join) > 0 {
		return MemberInfo{}, errors.New("a restored member starts a new cluster: it joins none")
	}
	if err := CheckSnapshotFile(file); err != nil {
		return MemberInfo{}, err
	}
	if err := l.checkSnapshotContent(ctx, file); err != nil {
		return MemberInfo{}, err
	}
	if _, err := os.Stat(l.ConfigFile(cfg.Name)); err == nil {
		return MemberInfo{}, fmt.Errorf("member %s is already set up here (%s)", cfg.Name, l.ConfigFile(cfg.Name))
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return MemberInfo{}, fmt.Errorf("read snapshot: %w", err)
	}
	// The member's account may not read the operator's file: it reads a
	// copy beside its configuration, with the same protection.
	copyPath := l.restoreCopy(cfg.Name)
	if err := l.writeConfig(copyPath, data); err != nil {
		return MemberInfo{}, fmt.Errorf("copy snapshot for member %s: %w", cfg.Name, err)
	}
	defer os.Remove(copyPath)
	cfg.RestoreFrom = copyPath
	mi, err := l.Setup(ctx, cfg)
	if err != nil {
		return mi, err
	}
	// The data directory holds the state now: the configuration forgets
	// the snapshot, so a member that loses its disk later refuses to start
	// rather than go back to it.
	written, err := l.Load(cfg.Name)
	if err == nil {
		written.RestoreFrom = ""
		var raw []byte
		if raw, err = yaml.Marshal(written); err == nil {
			err = l.writeConfig(l.ConfigFile(cfg.Name), raw)
		}
	}
	if err != nil {
		return mi, fmt.Errorf("member %s is restored and running, but its configuration still names the snapshot: %w", cfg.Name, err)
	}
	return mi, nil
}

// restoreCopy is where Restore puts the snapshot for member name.
func (l *Local) restoreCopy(name string) string { return l.ConfigFile(name) + ".restore.db" }

// checkSnapshotContent asks pgherd-dcs (which links the store's format)
// to read the snapshot through: a file from another program is refused
// with its one-line reason before anything is set up.
func (l *Local) checkSnapshotContent(ctx context.Context, file string) error {
	daemon, err := Daemon(l.Exec)
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, daemon, "--check-snapshot", file).CombinedOutput()
	if err != nil {
		msg := strings.TrimPrefix(strings.TrimSpace(string(out)), "Error: ")
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%s: %w", msg, ErrBadSnapshot)
	}
	return nil
}
