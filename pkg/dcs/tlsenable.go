package dcs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/safefs"
)

// Switching a running plain-TCP cluster to mutual TLS (`pgherd dcs tls
// enable`) takes two rolling restarts of this host's members, one member
// at a time so that the others keep the quorum:
//
//  1. AcceptTLS: the member gets certificates of the cluster's CA and
//     accept_plain: its ports serve TLS and plain TCP (told apart by the
//     first byte), it dials its peers with TLS and falls back to plain TCP
//     for those not switched yet, and it advertises https URLs.
//  2. RefusePlain: once every member of the cluster advertises https (each
//     has been through step 1, here or on its own host), accept_plain is
//     dropped: the member speaks TLS only.
//
// The CA is made on the first data member's host where the command runs;
// the members of another host are switched by running the command there
// (TLSState says which members still speak plain TCP).

// ErrTLSAlready means this host's members speak TLS only and every member
// of the cluster serves TLS: there is nothing to do here (another host's
// members may still accept plain TCP beside it, until the command runs
// there again).
var ErrTLSAlready = errors.New("TLS is already enabled")

// TLSState is where a cluster and this host's members stand in the
// switch to TLS.
type TLSState struct {
	// Plain, Switching and Done are this host's members: on plain TCP,
	// serving both, on TLS only.
	Plain, Switching, Done []string
	// RemotePlain lists the members of other hosts that still advertise
	// plain TCP: they are switched by `pgherd dcs tls enable` on their
	// own hosts.
	RemotePlain []string
	// WitnessOnly: this host has no data member.
	WitnessOnly bool
	// Members is the number of members of the cluster.
	Members int
}

// TLSState reads this host's member configurations and asks a local
// member for the cluster's membership. Every member must answer: a switch
// restarts members one at a time and needs the others for the quorum.
func (l *Local) TLSState(ctx context.Context) (TLSState, error) {
	var st TLSState
	cfgs, err := l.Configs()
	if err != nil {
		return st, err
	}
	if len(cfgs) == 0 {
		return st, fmt.Errorf("no dcs member is set up here (%s): run `pgherd dcs tls enable` on a host of the cluster's members", l.Dir)
	}
	st.WitnessOnly = true
	local := map[string]bool{}
	var plainWitnesses []string
	for _, c := range cfgs {
		local[c.Name] = true
		if c.Role == RoleData {
			st.WitnessOnly = false
		}
		switch {
		case !c.PeerTLS.Enabled() && !c.ClientTLS.Enabled() && c.Role == RoleData:
			st.Plain = append(st.Plain, c.Name)
		case !c.PeerTLS.Enabled() && !c.ClientTLS.Enabled():
			plainWitnesses = append(plainWitnesses, c.Name)
		case c.AcceptPlain:
			st.Switching = append(st.Switching, c.Name)
		case c.PeerTLS.Enabled() && c.ClientTLS.Enabled():
			st.Done = append(st.Done, c.Name)
		default:
			return st, fmt.Errorf("member %s has TLS on one port only (%s): set peer_tls and client_tls alike, or neither, then run this again", c.Name, l.ConfigFile(c.Name))
		}
	}
	// Data members first: with a data token, the first one's certificates
	// bring the CA that issues the others'.
	st.Plain = append(st.Plain, plainWitnesses...)
	ac, err := NewAdminClient(cfgs[0].PeerAddr(), l.adminOr(cfgs[0]))
	if err != nil {
		return st, err
	}
	defer ac.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ms, err := ac.Members(cctx)
	if err != nil {
		return st, fmt.Errorf("member %s does not answer (%w): start it (`pgherd dcs start %s`) before switching to TLS", cfgs[0].Name, err, cfgs[0].Name)
	}
	st.Members = len(ms)
	var down []string
	for _, m := range ms {
		if !m.Healthy {
			down = append(down, m.Name)
		}
		if !local[m.Name] && !strings.HasPrefix(m.PeerURL, "https://") {
			st.RemotePlain = append(st.RemotePlain, m.Name)
		}
	}
	if len(down) > 0 {
		return st, fmt.Errorf("member %s does not follow a leader: the switch restarts members one at a time and needs every other one up; start it, or remove it with `pgherd dcs leave`, then run this again", strings.Join(down, ", "))
	}
	sort.Strings(st.RemotePlain)
	return st, nil
}

// Finished reports whether nothing is left to switch, here or elsewhere.
func (st TLSState) Finished() bool {
	return len(st.Plain) == 0 && len(st.Switching) == 0 && len(st.RemotePlain) == 0
}

// AcceptTLS is step 1 for this host's members on plain TCP: it makes the
// cluster's CA when this host holds none (it must be a data member's
// host, and no other host may have made one: then every member speaks
// plain TCP), issues each member's certificates and restarts it serving
// both. It returns the members it switched.
//
// On a host without the CA while another host's members speak TLS, the
// first member's certificates come from the member at via, signed for
// l.JoinToken (a data token also brings the CA, which then issues the
// others'); the token is consumed once that member runs with them.
func (l *Local) AcceptTLS(ctx context.Context, st TLSState, via string) ([]string, error) {
	if len(st.Plain) == 0 {
		return nil, nil
	}
	if err := l.CheckAcceptTLS(st); err != nil {
		return nil, err
	}
	pki := l.PKI()
	cfgs := map[string]Config{}
	for _, name := range st.Plain {
		c, err := l.Load(name)
		if err != nil {
			return nil, err
		}
		cfgs[name] = c
	}
	var tok *Token
	if !pki.Exists() && l.JoinToken != "" {
		t, err := ParseToken(l.JoinToken)
		if err != nil {
			return nil, err
		}
		tok = &t
	} else if !pki.Exists() {
		if err := pki.Create(st.Plain[0]); err != nil {
			return nil, fmt.Errorf("create the cluster's CA: %w", err)
		}
		if err := l.ownTree(pki.Dir); err != nil {
			return nil, err
		}
		logging.From(ctx).Info("created the cluster's CA in " + pki.Dir)
	}
	if _, ok := l.AdminTLS(); !ok && tok == nil {
		if err := l.IssueAdmin(); err != nil {
			return nil, fmt.Errorf("issue the administrator's credential: %w", err)
		}
		if err := l.ownTree(l.adminDir()); err != nil {
			return nil, err
		}
	}
	var done []string
	for _, name := range st.Plain {
		c := cfgs[name]
		dir := l.TLSDir(name)
		if tok != nil && len(done) == 0 {
			if err := l.certsFromToken(ctx, *tok, via, c); err != nil {
				return done, err
			}
		} else if err := pki.IssueMember(dir, name, c.Role, PeerHosts(c), ClientHosts(c)); err != nil {
			return done, fmt.Errorf("issue the certificates of member %s: %w", name, err)
		}
		if err := l.ownTree(l.TLSDir("")); err != nil {
			return done, err
		}
		c.PeerTLS, c.ClientTLS = MemberTLS(dir)
		c.AcceptPlain = true
		c.AdvertiseClient = httpsURL(c.AdvertiseClient)
		if c.Role == RoleData {
			c.CADir = pki.Dir
			if c.Credentials == "" {
				c.Credentials = l.Credentials
			}
		}
		if err := l.rewrite(ctx, c, "serving TLS beside plain TCP"); err != nil {
			return done, err
		}
		if tok != nil && len(done) == 0 {
			if err := consumeToken(ctx, via, *tok, c.PeerTLS); err != nil {
				logging.From(ctx).Warn("the member runs with its certificates, but its token could not be marked used (it stays usable by this name only until it expires)", "err", err)
			}
		}
		done = append(done, name)
	}
	return done, nil
}

// CheckAcceptTLS says whether AcceptTLS can switch this host's plain
// members: it needs the cluster's CA here, or a data member here and no
// other host's members on TLS yet (then it makes the CA).
func (l *Local) CheckAcceptTLS(st TLSState) error {
	pki := l.PKI()
	switch {
	case len(st.Plain) == 0 || pki.Exists():
		return nil
	case st.Members == len(st.Plain)+len(st.RemotePlain) && st.WitnessOnly:
		return fmt.Errorf("%w (%s), and only a witness is set up here: run `pgherd dcs tls enable` on a data member's host first", ErrNoCA, pki.Dir)
	case st.Members == len(st.Plain)+len(st.RemotePlain):
		return nil // the first host to switch: it makes the CA
	case l.JoinToken == "":
		return fmt.Errorf("%w (%s), but another host's members already speak TLS with the cluster's CA: give --token (`pgherd dcs token create --role data`, or --role witness for a witness, on that host) and --peer (one of that host's members)", ErrNoCA, pki.Dir)
	}
	if len(st.Plain) > 1 && st.WitnessOnly {
		return fmt.Errorf("a witness token switches one member, and %d witnesses are set up here (%s): switch them from a data member's host, or remove all but one", len(st.Plain), strings.Join(st.Plain, ", "))
	}
	return nil
}

// certsFromToken has member c's certificates signed by the member at via
// for token t; a data token also brings the cluster's CA, from which this
// host then issues the administrator's credential and its other members'.
func (l *Local) certsFromToken(ctx context.Context, t Token, via string, c Config) error {
	resp, err := requestCertificates(ctx, via, t, c, l.TLSDir(c.Name))
	if err != nil {
		return err
	}
	if c.Role == RoleData {
		if err := l.PKI().installCA(resp); err != nil {
			return err
		}
		if err := l.IssueAdmin(); err != nil {
			return fmt.Errorf("issue the administrator's credential: %w", err)
		}
	}
	for _, d := range []string{l.PKI().Dir, l.adminDir(), l.TLSDir("")} {
		if err := l.ownTree(d); err != nil {
			return err
		}
	}
	return nil
}

// RefusePlain is step 2 for this host's members that serve both: once
// every member of the cluster advertises TLS (st.RemotePlain is empty), it
// restarts each on TLS only. It returns the members it switched.
func (l *Local) RefusePlain(ctx context.Context, st TLSState) ([]string, error) {
	if len(st.RemotePlain) > 0 || len(st.Plain) > 0 {
		return nil, nil
	}
	var done []string
	for _, name := range st.Switching {
		c, err := l.Load(name)
		if err != nil {
			return done, err
		}
		c.AcceptPlain = false
		if err := l.rewrite(ctx, c, "on TLS only"); err != nil {
			return done, err
		}
		done = append(done, name)
	}
	return done, nil
}

// rewrite writes member c's configuration and restarts it with it.
func (l *Local) rewrite(ctx context.Context, c Config, what string) error {
	written, err := l.writtenConfig(c)
	if err != nil {
		return err
	}
	raw, err := yaml.Marshal(written)
	if err != nil {
		return err
	}
	if err := l.writeConfig(l.ConfigFile(c.Name), raw); err != nil {
		return err
	}
	logging.From(ctx).Info(fmt.Sprintf("restarting dcs member %s %s", c.Name, what))
	if err := l.restartMember(ctx, c); err != nil {
		return err
	}
	return l.waitPublishedTLS(ctx, c)
}

// waitPublishedTLS waits until the member table shows member c with https
// URLs: a member publishes its metadata shortly after it starts, and the
// next step (another host's run too) decides from that table which
// members serve TLS.
func (l *Local) waitPublishedTLS(ctx context.Context, c Config) error {
	ac, err := NewAdminClient(c.PeerAddr(), l.adminOr(c))
	if err != nil {
		return err
	}
	defer ac.Close()
	deadline := time.Now().Add(cmp.Or(l.Ready, 30*time.Second))
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ms, err := ac.Members(cctx)
		cancel()
		for _, m := range ms {
			if m.Name == c.Name && strings.HasPrefix(m.PeerURL, "https://") && strings.HasPrefix(m.ClientURL, "https://") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("member %s runs, but the member list does not show its https URLs yet (%v): run this again", c.Name, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// writtenConfig is c as its file holds it: LoadConfig fills defaults that
// the file leaves implicit, which are taken back out here.
func (l *Local) writtenConfig(c Config) (Config, error) {
	raw, err := safefs.ReadFile(l.ConfigFile(c.Name))
	if err != nil {
		return c, err
	}
	var w Config
	if err := yaml.Unmarshal(raw, &w); err != nil {
		return c, err
	}
	w.PeerTLS, w.ClientTLS, w.AcceptPlain = c.PeerTLS, c.ClientTLS, c.AcceptPlain
	w.AdvertiseClient, w.CADir, w.Credentials = c.AdvertiseClient, c.CADir, c.Credentials
	return w, nil
}

// restartMember stops member c and starts it again, returning once it
// follows a leader.
func (l *Local) restartMember(ctx context.Context, c Config) error {
	svc := l.service(c.Name)
	if err := l.Services.Stop(ctx, svc); err != nil {
		return fmt.Errorf("restart %s: %w", svc, err)
	}
	// Stopped, its files can be handed to the members' account.
	if err := l.adopt(c); err != nil {
		return err
	}
	if err := l.Services.Start(ctx, svc); err != nil {
		return fmt.Errorf("restart %s: %w", svc, err)
	}
	if _, err := l.waitReady(ctx, c); err != nil {
		log, _ := os.ReadFile(svc.LogFile)
		return fmt.Errorf("member %s, restarted: %w%s", c.Name, err, lastLines(string(log)))
	}
	return nil
}

// httpsURL turns an advertised http URL into https ("" stays "": the
// member derives it from its listener and TLS).
func httpsURL(u string) string {
	if rest, ok := strings.CutPrefix(u, "http://"); ok {
		return "https://" + rest
	}
	return u
}
