package dcs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/safefs"
	"github.com/pgherd/pgherd/pkg/service"
)

// Local manages the members set up on this host: one config file
// <Dir>/<name>.yaml each, run by the service manager as
// `pgherd-dcs --config FILE`, the pgherd-dcs beside Exec.
type Local struct {
	Dir      string
	Exec     string // absolute path of the pgherd binary
	Services service.Manager
	// User runs the members when pgherd is root (site setting
	// patroni.dcs.embedded.sysuser, an account of their own); nil runs
	// them as the current user. It owns their data, keys and state, and
	// reads (group) their root-owned configuration.
	User *service.User
	// PatroniUser is PostgreSQL's account (site setting sysuser), which
	// Patroni runs as: it owns Patroni's DCS client credential
	// (PatroniDir), and none of the members' files. nil: the current user.
	PatroniUser *service.User
	// Ready bounds the wait for a new member to see a leader (default 30s).
	Ready time.Duration
	// QuotaBytes is the space quota of the members Setup makes when their
	// Config sets none (site.yaml: patroni.dcs.embedded.quota_bytes).
	QuotaBytes int64
	// Snapshots is the periodic snapshot schedule of the members Setup
	// makes when their Config sets none (patroni.dcs.embedded.snapshots).
	Snapshots SnapshotSchedule
	// Plain sets members up without TLS (site.yaml:
	// patroni.dcs.embedded.tls: false). By default Setup gives every
	// member certificates of the cluster's CA (localtls.go).
	Plain bool
	// JoinToken is the join token (dcs token create) that Setup presents
	// when the member joins: the member it joins through signs its
	// certificates. Without it, a join needs this host to hold the CA.
	JoinToken string
	// Credentials matches this host's Patroni credentials files
	// (site.Settings.PatroniCredentialsGlob): data members hand them to
	// data newcomers with a token, which store them there.
	Credentials string
	// CheckJoin, when set, runs once the new member holds its
	// certificates and before it starts (the checks a host without a
	// credential could not make earlier).
	CheckJoin func(ctx context.Context, cred TLSConfig) error
}

// ConfigFile is where member name's configuration lives.
func (l *Local) ConfigFile(name string) string { return filepath.Join(l.Dir, name+".yaml") }

// DefaultDataDir is the data directory used when the request names none.
func (l *Local) DefaultDataDir(name string) string { return filepath.Join(l.Dir, name) }

func (l *Local) service(name string) service.Service {
	return service.Service{Kind: service.KindDCS, Instance: name,
		Exec:        []string{daemonPath(l.Exec), "--config", l.ConfigFile(name)},
		LogFile:     filepath.Join(l.Dir, name+".log"),
		Description: "pgherd DCS member " + name, User: l.User}
}

// own hands path to the account the members run as.
func (l *Local) own(path string) error {
	if l.User == nil {
		return nil
	}
	// Lchown: a data directory given on the command line may sit where
	// that account can swap it for a link.
	if err := os.Lchown(path, int(l.User.UID), int(l.User.GID)); err != nil {
		return fmt.Errorf("give %s to %s: %w", path, l.User.Name, err)
	}
	return nil
}

// Setup creates member cfg on this host and starts it: it bootstraps a new
// cluster, or joins through cfg.Join. It returns once the member follows a
// leader. Every step is undone if a later one fails, so a failed setup
// leaves no file, no service and no member behind.
func (l *Local) Setup(ctx context.Context, cfg Config) (MemberInfo, error) {
	var mi MemberInfo
	if cfg.DataDir == "" {
		cfg.DataDir = l.DefaultDataDir(cfg.Name)
	}
	if cfg.QuotaBytes == 0 {
		cfg.QuotaBytes = l.QuotaBytes
	}
	if cfg.Snapshots.Dir == "" {
		cfg.Snapshots = l.Snapshots
	}
	written := cfg // the file keeps only what was asked; defaults stay implicit
	if err := cfg.Validate(); err != nil {
		return mi, err
	}
	file := l.ConfigFile(cfg.Name)
	if _, err := os.Stat(file); err == nil {
		return mi, fmt.Errorf("member %s is already set up here (%s)", cfg.Name, file)
	}
	var undo []func()
	fail := func(err error) (MemberInfo, error) {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return mi, err
	}
	if err := l.legacyPatroni(); err != nil {
		return mi, err
	}
	if !l.Plain && !cfg.PeerTLS.Enabled() {
		undoTLS, err := l.issueCredentials(ctx, &cfg)
		if err != nil {
			return mi, err
		}
		undo = append(undo, undoTLS)
		written.PeerTLS, written.ClientTLS, written.CADir = cfg.PeerTLS, cfg.ClientTLS, cfg.CADir
		if cfg.Role == RoleData && l.Credentials != "" {
			written.Credentials = l.sharedCredentials()
			if d := filepath.Dir(written.Credentials); l.User != nil && fresh(d) {
				undo = append(undo, func() { os.RemoveAll(d) })
			}
			if err := l.ShareCredentials(); err != nil {
				return fail(err)
			}
		}
	}
	if len(cfg.Join) > 0 {
		if err := l.reachable(ctx, cfg); err != nil {
			return fail(err)
		}
		if l.CheckJoin != nil {
			if err := l.CheckJoin(ctx, cfg.PeerTLS); err != nil {
				return fail(err)
			}
		}
	}
	daemon, err := Daemon(l.Exec)
	if err != nil {
		return fail(err)
	}
	if err := l.User.Reach(daemon); err != nil {
		return fail(fmt.Errorf("%w, or install pgherd where %s can reach it", err, l.User.Name))
	}
	if fresh, err := OpenDataDir(cfg.DataDir, cfg.Name); err != nil {
		return fail(err)
	} else if !fresh {
		return fail(fmt.Errorf("data dir %s already holds member %s: start it with `pgherd dcs serve --config FILE`, or choose another data dir", cfg.DataDir, cfg.Name))
	}
	undo = append(undo, func() { os.RemoveAll(cfg.DataDir) })
	if err := l.own(cfg.DataDir); err != nil {
		return fail(err)
	}
	if d := cfg.Snapshots.Dir; d != "" {
		if _, err := os.Lstat(d); os.IsNotExist(err) {
			if err := os.MkdirAll(d, 0o750); err != nil {
				return fail(fmt.Errorf("snapshots dir: %w", err))
			}
			undo = append(undo, func() { os.Remove(d) })
			if err := l.own(d); err != nil {
				return fail(err)
			}
		}
	}
	raw, err := yaml.Marshal(written)
	if err != nil {
		return fail(err)
	}
	undo = append(undo, func() { os.Remove(file) })
	if err := l.writeConfig(file, raw); err != nil {
		return fail(err)
	}
	svc := l.service(cfg.Name)
	undo = append(undo, func() { os.Remove(svc.LogFile) })
	if err := l.Services.Install(ctx, svc); err != nil {
		return fail(fmt.Errorf("install service: %w", err))
	}
	undo = append(undo, func() { l.Services.Uninstall(context.Background(), svc) })
	if err := l.Services.Start(ctx, svc); err != nil {
		return fail(fmt.Errorf("start service: %w", err))
	}
	undo = append(undo, func() { l.Services.Stop(context.Background(), svc) })
	logging.From(ctx).Info("dcs member started", "name", cfg.Name, "service", l.Services.Name())
	if mi, err = l.waitReady(ctx, cfg); err != nil {
		log, _ := safefs.ReadFile(svc.LogFile)
		return fail(fmt.Errorf("member %s did not join a leader: %w%s", cfg.Name, err, lastLines(string(log))))
	}
	// From now on the member knows its cluster: emptied, it refuses to
	// bootstrap a new one; given another cluster's data dir, to start.
	written.ClusterID = mi.ClusterID
	if raw, err = yaml.Marshal(written); err == nil {
		err = l.writeConfig(file, raw)
	}
	if err != nil {
		return fail(fmt.Errorf("record the cluster ID in %s: %w", file, err))
	}
	if t, err := ParseToken(l.JoinToken); err == nil && len(cfg.Join) > 0 {
		if err := consumeToken(ctx, cfg.Join[0], t, cfg.PeerTLS); err != nil {
			logging.From(ctx).Warn("the member joined, but its token could not be marked used (it stays usable by this name only until it expires)", "err", err)
		}
	}
	return mi, nil
}

func (l *Local) reachable(ctx context.Context, cfg Config) error {
	var errs []error
	for _, p := range cfg.Join {
		ac, err := NewAdminClient(p, cfg.PeerTLS)
		if err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = ac.Status(cctx)
		cancel()
		ac.Close()
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("cannot reach any member to join through: %w", errors.Join(errs...))
}

func (l *Local) waitReady(ctx context.Context, cfg Config) (MemberInfo, error) {
	ready := l.Ready
	if ready == 0 {
		ready = 30 * time.Second
	}
	// The member may be reissuing its certificates as it starts
	// (EnsureCertHosts), writing a new key, then its certificate: a pair
	// read in between does not match, so loading it is retried too.
	var ac *AdminClient
	defer func() {
		if ac != nil {
			ac.Close()
		}
	}()
	deadline := time.Now().Add(ready)
	var last error
	for time.Now().Before(deadline) {
		var mi MemberInfo
		var err error
		if ac == nil {
			ac, err = NewAdminClient(cfg.PeerAddr(), cfg.PeerTLS)
		}
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			mi, err = ac.Status(cctx)
			cancel()
		}
		if err == nil && mi.Leader != "" && mi.ClusterID != "" {
			return mi, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return MemberInfo{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if last == nil {
		last = errors.New("no leader")
	}
	return MemberInfo{}, fmt.Errorf("not ready after %s: %w", ready, last)
}

// Configs returns the members set up on this host, sorted by name.
func (l *Local) Configs() ([]Config, error) {
	files, _ := filepath.Glob(filepath.Join(l.Dir, "*.yaml"))
	sort.Strings(files)
	var out []Config
	for _, f := range files {
		c, err := l.load(f)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Admin returns an admin client for a local member: the named one, or
// the only one when name is empty.
func (l *Local) Admin(name string) (*AdminClient, Config, error) {
	c, err := l.Pick(name)
	if err != nil {
		return nil, Config{}, err
	}
	ac, err := NewAdminClient(c.PeerAddr(), l.adminOr(c))
	return ac, c, err
}

// Pick returns the configuration of the local member called name, or of
// the only one set up here when name is empty.
func (l *Local) Pick(name string) (Config, error) {
	cfgs, err := l.Configs()
	if err != nil {
		return Config{}, err
	}
	for _, c := range cfgs {
		if name == "" && len(cfgs) == 1 || c.Name == name {
			return c, nil
		}
	}
	if name == "" && len(cfgs) > 1 {
		return Config{}, fmt.Errorf("%d members are set up here: name one, or use --peer", len(cfgs))
	}
	if name == "" {
		return Config{}, fmt.Errorf("no dcs member is set up here (%s): use --peer HOST:PORT", l.Dir)
	}
	return Config{}, fmt.Errorf("no dcs member %q is set up here (%s)", name, l.Dir)
}

// AdminOther returns an admin client for a local member other than name
// (the one that is leaving), or for name when it is the only one.
func (l *Local) AdminOther(name string) (*AdminClient, error) {
	pick, err := l.other(name)
	if err != nil {
		return nil, err
	}
	return NewAdminClient(pick.PeerAddr(), l.adminOr(pick))
}

// other picks the local member to remove member name through: a data
// member other than name, else another member, else name itself. A
// witness passes on only its own membership changes, so it comes after
// any data member.
func (l *Local) other(name string) (Config, error) {
	cfgs, err := l.Configs()
	if err != nil {
		return Config{}, err
	}
	if len(cfgs) == 0 {
		return Config{}, fmt.Errorf("no dcs member is set up here (%s): use --peer HOST:PORT", l.Dir)
	}
	pick := cfgs[0]
	for _, c := range cfgs {
		if c.Name == name {
			continue
		}
		if c.Role != RoleWitness {
			return c, nil
		}
		if pick.Name == name {
			pick = c
		}
	}
	return pick, nil
}

// adminOr is the administrator's credential when this host holds it, else
// member c's own.
func (l *Local) adminOr(c Config) TLSConfig {
	if t, ok := l.AdminTLS(); ok && c.PeerTLS.Enabled() {
		return t
	}
	return c.PeerTLS
}

// StopLocal stops and uninstalls the service of a local member after it
// left the cluster. Its config and data stay, and are named in the result.
func (l *Local) StopLocal(ctx context.Context, name string) ([]string, error) {
	svc := l.service(name)
	if err := l.Services.Stop(ctx, svc); err != nil {
		return nil, fmt.Errorf("stop %s: %w", svc, err)
	}
	if err := l.Services.Uninstall(ctx, svc); err != nil {
		return nil, fmt.Errorf("uninstall %s: %w", svc, err)
	}
	c, err := l.Load(name)
	if err != nil {
		return []string{l.ConfigFile(name)}, nil
	}
	return []string{l.ConfigFile(name), c.DataDir}, nil
}

// Load reads the configuration of member name on this host. Root decides
// from it what to delete, so a file the member's account could change is
// first taken back (see protect).
func (l *Local) Load(name string) (Config, error) { return l.load(l.ConfigFile(name)) }

func (l *Local) load(file string) (Config, error) {
	if err := l.protect(file); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Config{}, err
	}
	return LoadConfig(file)
}

// protect makes a member configuration root's: owned by root, readable by
// the members' group (0640), so that their account can read it but not
// change the data_dir root deletes. Files written by earlier versions,
// owned by that account, are migrated here. Without a separate account
// (l.User nil) the file stays the current user's, 0600.
func (l *Local) protect(file string) error {
	if l.User == nil {
		return nil
	}
	fi, err := os.Lstat(file)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file: remove it and set the member up again", file)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid == 0 && st.Gid == l.User.GID && fi.Mode().Perm() == 0o640 {
		return nil
	}
	if err := os.Lchown(file, 0, int(l.User.GID)); err != nil {
		return fmt.Errorf("give %s back to root: %w", file, err)
	}
	return os.Chmod(file, 0o640)
}

// OwnerUID is the account whose data directories root may delete: the
// members' account, or the current user's.
func (l *Local) OwnerUID() uint32 {
	if l.User == nil {
		return uint32(os.Geteuid())
	}
	return l.User.UID
}

// writeConfig writes a member configuration atomically (a fresh temporary
// file, never one found in place) and protects it.
func (l *Local) writeConfig(path string, data []byte) error {
	if err := MkdirPrivate(filepath.Dir(path)); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op once renamed
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.protect(f.Name())
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(f.Name(), path)
}

func lastLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) == 0 || lines[0] == "" {
		return ""
	}
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return "; its log ends with:\n  " + strings.Join(lines, "\n  ")
}

// DaemonName is the member daemon's binary, installed beside pgherd.
const DaemonName = "pgherd-dcs"

// Daemon returns the pgherd-dcs binary that sits beside the pgherd binary
// at pgherd, or an error naming the path where it was expected.
func Daemon(pgherd string) (string, error) {
	p := daemonPath(pgherd)
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		return "", fmt.Errorf("%s is missing: DCS members run %s, expected beside pgherd; install both binaries of one build (make build writes bin/pgherd and bin/%s)", p, DaemonName, DaemonName)
	}
	return p, nil
}

func daemonPath(pgherd string) string { return filepath.Join(filepath.Dir(pgherd), DaemonName) }
