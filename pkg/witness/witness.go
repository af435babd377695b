// Package witness adds, inspects and removes witnesses of pgherd's
// embedded DCS: Raft members that hold only the DCS data, the third vote
// that lets two PostgreSQL hosts fail over by themselves. It also sets up
// the data member beside a Patroni instance (AddMember), with the same
// checks.
//
// Members on this host are dcs.Local's: a configuration <prefix>/dcs/NAME.yaml,
// a data directory and a "dcs" service. AddMember checks everything it can
// before dcs.Local.Setup makes anything (which undoes its own steps);
// Remove takes the member out of the Raft configuration first (refused
// when that would cost the quorum) and only then deletes it.
package witness

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

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/dcs/voting"
	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/names"
)

// Env is what the lifecycle needs.
type Env struct {
	Local *dcs.Local // this host's members
	// PeerTLS is the credential presented to members' peer ports; empty
	// means this host's (Env.Creds).
	PeerTLS dcs.TLSConfig
	// SettleTimeout bounds the wait for the leader to settle a new
	// member's vote; zero means 30 s.
	SettleTimeout time.Duration
}

// Errors callers may test with errors.Is.
var (
	ErrNotFound   = errors.New("no such DCS member on this host")
	ErrNameInUse  = errors.New("member name already in use")
	ErrNoPeer     = errors.New("no DCS member reachable")
	ErrNotWitness = errors.New("not a witness")
)

// AddRequest describes a new member.
type AddRequest struct {
	Name         string
	Role         string // dcs.RoleWitness (Add) or dcs.RoleData (AddMember)
	Peer         string // HOST:PORT of any member's peer port; "" bootstraps a new cluster (data only)
	ListenPeer   string // default: this host's address toward Peer, port 2380
	ListenClient string // default: the same host, port 2379
	DataDir      string // default: Layout(Name).DataDir
	Zone         string
	Profile      string // production (default) or testing
	Instance     string // data member: the PostgreSQL instance it serves (VERSION/NAME)
	// FastFailover is a data member's host-aware revocation declaration
	// (zero: off).
	FastFailover dcs.FastFailover
	// Token is a join token (`pgherd dcs token create`) for a host that
	// holds none of the cluster's files.
	Token string
}

// AddResult is the membership once the witness has joined, and what the
// checks had to say.
type AddResult struct {
	Name     string             `json:"name"`
	Warnings []string           `json:"warnings"`
	Members  []dcs.MemberStatus `json:"members"`
}

// Add sets up a witness on this host and joins it to the cluster that
// Peer belongs to (see AddMember).
func Add(ctx context.Context, env *Env, req AddRequest) (*AddResult, error) {
	req.Role = dcs.RoleWitness
	if req.Peer == "" {
		return nil, fmt.Errorf("a witness joins an existing cluster: give --peer HOST:PORT of one of its members")
	}
	return AddMember(ctx, env, req)
}

// AddMember sets up a member on this host and joins it to the cluster
// that Peer belongs to, or, for a data member without Peer, bootstraps a
// new cluster. Before it touches anything it checks that Peer answers,
// that the name is free, and the failure domains (voting.CheckJoin); then
// it writes the configuration, starts the service and waits until the
// member is healthy and the leader has settled its vote. Any failure
// undoes every step.
func AddMember(ctx context.Context, env *Env, req AddRequest) (*AddResult, error) {
	log := logging.From(ctx)
	if err := names.Check("member", req.Name); err != nil {
		return nil, err
	}
	if req.Role != dcs.RoleData && req.Role != dcs.RoleWitness {
		return nil, fmt.Errorf("member role %q: use %s or %s", req.Role, dcs.RoleData, dcs.RoleWitness)
	}
	if _, _, err := net.SplitHostPort(req.Peer); req.Peer != "" && err != nil {
		return nil, fmt.Errorf("--peer %q: want HOST:PORT, the peer port of a running member", req.Peer)
	}
	if cfg, err := dcs.LoadConfig(env.Local.ConfigFile(req.Name)); err == nil {
		how := fmt.Sprintf("remove it with `pgherd witness remove %s`", req.Name)
		if cfg.Role != dcs.RoleWitness {
			how = "it serves a PostgreSQL instance here"
		}
		return nil, fmt.Errorf("%w: a %s DCS member named %q is already set up on this host (%s): choose another name (%s)",
			ErrNameInUse, cfg.Role, req.Name, env.Local.ConfigFile(req.Name), how)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var warnings []string
	check := func(ctx context.Context, cred dcs.TLSConfig) (err error) {
		warnings, err = env.checkJoin(ctx, req, cred)
		return err
	}
	switch cred := env.Creds(); {
	case req.Peer == "":
	case req.Token != "" && !cred.Enabled():
		// No credential here yet: check once the token brought one,
		// before the member starts.
		env.Local.CheckJoin = check
	default:
		if err := check(ctx, cred); err != nil {
			return nil, err
		}
	}
	env.Local.JoinToken = req.Token
	if err := defaultListen(&req); err != nil {
		return nil, err
	}
	dataDir := req.DataDir
	if dataDir == "" {
		dataDir = env.Local.DefaultDataDir(req.Name)
	}
	if nonEmptyDir(dataDir) {
		return nil, fmt.Errorf("data directory %s is not empty: it may hold another member's data; choose another --data-dir or remove it yourself", dataDir)
	}
	cfg := dcs.Config{Name: req.Name, Role: req.Role, Zone: req.Zone, DataDir: req.DataDir, Instance: req.Instance,
		ListenPeer: req.ListenPeer, ListenClient: req.ListenClient, FastFailover: req.FastFailover}
	peer := req.ListenPeer
	if req.Peer != "" {
		cfg.Join, peer = []string{req.Peer}, req.Peer
	}
	// dcs.Local makes its directory 0700 with any missing parent: make the
	// parents first, traversable, or the site prefix would lock the
	// PostgreSQL user out of everything else under it.
	if err := os.MkdirAll(filepath.Dir(env.Local.Dir), 0o755); err != nil {
		return nil, err
	}
	log.Info("starting DCS member", "name", req.Name, "role", req.Role, "peer", req.ListenPeer, "client", req.ListenClient, "join", req.Peer)
	if _, err := env.Local.Setup(ctx, cfg); err != nil {
		return nil, err
	}
	members, err := env.waitSettled(ctx, req.Name, peer)
	if err != nil {
		_ = env.deleteMember(context.WithoutCancel(ctx), req.Name, true)
		return nil, err
	}
	log.Info("DCS member ready", "name", req.Name, "role", req.Role)
	if warnings == nil {
		warnings = []string{}
	}
	return &AddResult{Name: req.Name, Warnings: warnings, Members: members}, nil
}

// checkJoin lists the members through req.Peer with cred and checks that
// req's name is free and what the voting policy says of its zone; it
// returns the policy's warnings.
func (e *Env) checkJoin(ctx context.Context, req AddRequest, cred dcs.TLSConfig) ([]string, error) {
	members, err := e.membersWith(ctx, []string{req.Peer}, cred)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		if m.Name == req.Name {
			return nil, fmt.Errorf("%w: the cluster already has a %s member named %q (%s): choose another name",
				ErrNameInUse, m.Role, m.Name, m.PeerURL)
		}
	}
	warnings, err := voting.CheckJoin(votingView(members), voting.Member{Name: req.Name, Role: req.Role, Zone: req.Zone}, req.Profile)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		logging.From(ctx).Warn(w)
	}
	return warnings, nil
}

// waitSettled waits until name is a healthy member and the leader's
// voting policy has settled (its suffrage stays the same for three
// seconds; the leader reconciles every half second).
func (e *Env) waitSettled(ctx context.Context, name, peer string) ([]dcs.MemberStatus, error) {
	timeout := e.SettleTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stableSince time.Time
	lastSuffrage := ""
	for {
		ms, err := e.members(ctx, []string{peer})
		if err == nil {
			for _, m := range ms {
				if m.Name != name || !m.Healthy {
					continue
				}
				if m.Suffrage != lastSuffrage {
					lastSuffrage, stableSince = m.Suffrage, time.Now()
				}
				if time.Since(stableSince) > 3*time.Second {
					return ms, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("DCS member %s was not a healthy member with a settled vote within %s (last: %v)", name, timeout, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// defaultListen fills the listen addresses: the local address this host
// uses toward the peer (the one the peer can reach back), ports 2380/2379.
func defaultListen(req *AddRequest) error {
	if (req.ListenPeer == "" || req.ListenClient == "") && req.Peer == "" {
		return fmt.Errorf("give --listen-peer and --listen-client: there is no --peer to find this host's address from")
	}
	if req.ListenPeer == "" || req.ListenClient == "" {
		c, err := net.Dial("udp", req.Peer)
		if err != nil {
			return fmt.Errorf("cannot find this host's address toward %s: %w; give --listen-peer and --listen-client", req.Peer, err)
		}
		host := c.LocalAddr().(*net.UDPAddr).IP.String()
		c.Close()
		if req.ListenPeer == "" {
			req.ListenPeer = net.JoinHostPort(host, "2380")
		}
		if req.ListenClient == "" {
			req.ListenClient = net.JoinHostPort(host, "2379")
		}
	}
	for flag, a := range map[string]string{"--listen-peer": req.ListenPeer, "--listen-client": req.ListenClient} {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "0" {
			return fmt.Errorf("%s %q: want HOST:PORT with a fixed port, the one other members and clients will dial", flag, a)
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("%s %s cannot be used: %v; choose another address or port", flag, a, errors.Unwrap(err))
		}
		ln.Close()
	}
	return nil
}

// LoadMember reads the configuration of the member called name on this
// host.
func (e *Env) LoadMember(name string) (dcs.Config, error) {
	if err := names.Check("member", name); err != nil {
		return dcs.Config{}, err
	}
	file := e.Local.ConfigFile(name)
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		return dcs.Config{}, fmt.Errorf("%w: %s (no %s); `pgherd witness list` shows the cluster's witnesses", ErrNotFound, name, file)
	}
	return e.Local.Load(name)
}

// LoadWitness reads the configuration of the witness called name on this
// host; a data member of that name is ErrNotWitness, with the command that
// removes or inspects it instead.
func (e *Env) LoadWitness(name string) (dcs.Config, error) {
	cfg, err := e.LoadMember(name)
	if err != nil {
		return cfg, err
	}
	if cfg.Role != dcs.RoleWitness {
		return dcs.Config{}, fmt.Errorf("%w: %s is a %s member of the DCS, not a witness; it leaves with the instance it serves (`pgherd instance drop`), and `pgherd dcs status %s` shows it",
			ErrNotWitness, name, cfg.Role, name)
	}
	return cfg, nil
}

// LocalMembers lists the DCS members configured on this host, by name.
func (e *Env) LocalMembers() ([]dcs.Config, error) { return e.Local.Configs() }

// Remove takes the witness called name out of the Raft configuration
// through any member that answers (the leader refuses when the voters
// still reachable afterwards would not be a majority: then nothing is
// changed), then stops and deletes its service, data and files.
// With force, a witness whose cluster no member of answers any more is
// deleted without leaving.
func Remove(ctx context.Context, env *Env, name string, force bool) error {
	if _, err := env.LoadWitness(name); err != nil {
		return err
	}
	if force {
		return env.deleteMember(ctx, name, false)
	}
	return RemoveMember(ctx, env, name)
}

// RemovalWarning says what removing witness name would cost the cluster
// (today: that two voters would remain), or "" when nothing or when no
// member answers. Callers show it before they ask for confirmation.
func RemovalWarning(ctx context.Context, env *Env, name string) string {
	cfg, err := env.LoadWitness(name)
	if err != nil {
		return ""
	}
	ms, err := env.members(ctx, append([]string{cfg.PeerAddr()}, cfg.Join...))
	if err != nil {
		return ""
	}
	return twoVotersLeft(ms, name)
}

// twoVotersLeft warns when taking name out of ms leaves exactly two
// voters: a majority of two is both, so the DCS no longer survives the loss
// of either.
func twoVotersLeft(ms []dcs.MemberStatus, name string) string {
	var left []string
	for _, m := range ms {
		if m.Suffrage == "voter" && m.Name != name {
			left = append(left, m.Name)
		}
	}
	if len(left) != 2 {
		return ""
	}
	return fmt.Sprintf("without %s, 2 voters remain (%s): the DCS loses its quorum if either fails; add a witness in a third failure domain with `pgherd witness add`",
		name, strings.Join(left, ", "))
}

// RemoveMember takes member name (any role) out of the cluster as Remove
// does, then deletes it from this host. The last voter of a cluster does
// not leave (there is no one left to ask): the cluster ends with it.
func RemoveMember(ctx context.Context, env *Env, name string) error {
	log := logging.From(ctx)
	cfg, err := env.LoadMember(name)
	if err != nil {
		return err
	}
	// What root will delete is checked before anything changes.
	if err := dcs.CheckDataDir(cfg.DataDir, name, env.Local.OwnerUID()); err != nil {
		return err
	}
	peers := append([]string{cfg.PeerAddr()}, cfg.Join...)
	if env.lastVoter(ctx, peers, name) {
		log.Warn("DCS member " + name + " is the cluster's last voter: the cluster ends with it")
	} else {
		if err := env.leave(ctx, peers, name); err != nil {
			return err
		}
		log.Info("DCS member left the cluster", "name", name)
	}
	return env.deleteMember(ctx, name, false)
}

// deleteMember stops member name and deletes its service, configuration,
// data and log, and, when it was this host's last data member, what only
// a data member's host holds (dcs.Local.DropTrust). quiet leaves out the
// progress line (an undo). The data directory named in the configuration
// is deleted only if it proves to be the member's (dcs.RemoveDataDir);
// otherwise nothing is stopped or deleted.
func (e *Env) deleteMember(ctx context.Context, name string, quiet bool) error {
	cfg, err := e.LoadMember(name)
	if err != nil {
		return err
	}
	uid := e.Local.OwnerUID()
	if err := dcs.CheckDataDir(cfg.DataDir, name, uid); err != nil {
		return err
	}
	if _, err := e.Local.StopLocal(ctx, name); err != nil {
		return err
	}
	file, logFile := e.Local.ConfigFile(name), filepath.Join(e.Local.Dir, name+".log")
	if err := dcs.RemoveDataDir(cfg.DataDir, name, uid); err != nil {
		return fmt.Errorf("DCS member %s is stopped, but its data could not be removed: %w", name, err)
	}
	for _, p := range []string{file, logFile} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("DCS member %s is stopped, but %s could not be removed: %w", name, p, err)
		}
	}
	// Its certificates and keys (Local.TLSDir), and its Patroni's
	// (Local.PatroniDir).
	tlsDir, patroniDir := e.Local.TLSDir(name), e.Local.PatroniDir(name)
	for _, d := range []string{tlsDir, patroniDir} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("DCS member %s is stopped, but %s could not be removed: %w", name, d, err)
		}
	}
	if !quiet {
		logging.From(ctx).Info("DCS member removed", "name", name, "deleted", strings.Join([]string{file, cfg.DataDir, logFile, tlsDir, patroniDir}, " "))
	}
	// The CA keys stay only where a data member runs.
	if err := e.Local.DropTrust(ctx, name); err != nil {
		return fmt.Errorf("DCS member %s is removed, but: %w", name, err)
	}
	return nil
}

// lastVoter reports whether name is the only voter of its cluster.
func (e *Env) lastVoter(ctx context.Context, peers []string, name string) bool {
	ms, err := e.members(ctx, peers)
	if err != nil {
		return false
	}
	voters := 0
	for _, m := range ms {
		if m.Suffrage == "voter" {
			voters++
			if m.Name != name {
				return false
			}
		}
	}
	return voters == 1
}

// leave asks the first member of peers that answers to remove name.
func (e *Env) leave(ctx context.Context, peers []string, name string) error {
	var errs []error
	for _, p := range peers {
		ac, err := dcs.NewAdminClient(p, e.Creds())
		if err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = ac.Leave(cctx, name)
		cancel()
		ac.Close()
		if err == nil {
			return nil
		}
		if !unreachable(err) {
			return err
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("%w to take %s out of the cluster (tried %s): %v; if that cluster no longer exists, delete the witness with --force",
		ErrNoPeer, name, strings.Join(peers, ", "), errors.Join(errs...))
}

func nonEmptyDir(dir string) bool {
	ents, err := os.ReadDir(dir)
	return err == nil && len(ents) > 0
}
