package instance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/patroni"
)

// EnableDCSTLS switches a running plain-TCP embedded DCS to mutual TLS,
// with the Patroni members of this host (`pgherd dcs tls enable`):
//
//  1. every check first (site settings, every member up, every local
//     Patroni answering): a refusal changes nothing;
//  2. each Patroni cluster with a local Patroni still on http is paused
//     (maintenance mode: PostgreSQL keeps running whatever the DCS does,
//     and Patroni leaves it running when it stops);
//  3. this host's members serve TLS beside plain TCP (dcs.Local.AcceptTLS,
//     one restart each);
//  4. each local Patroni gets a client certificate and `protocol: https`
//     in its YAML, and is restarted: Patroni 3.0.2 re-reads the etcd
//     credentials on SIGHUP but not its TLS settings;
//  5. once every member of the cluster serves TLS, this host's members
//     refuse plain TCP (dcs.Local.RefusePlain, one restart each);
//  6. the clusters it paused are resumed.
//
// Members of other hosts are switched by the same command on their hosts;
// the result says which are left. A host without the cluster's CA, once
// another host's members speak TLS, brings a join token (Local.JoinToken). Run again after a failure, it goes on
// from where it stopped.
func EnableDCSTLS(ctx context.Context, env *Env, req DCSTLSRequest) (*DCSTLSResult, error) {
	l, via := req.Local, req.Via
	if !env.Site.Patroni.DCS.Embedded.TLS {
		return nil, errors.New("patroni.dcs.embedded.tls is false in the site settings, so members set up later would speak plain TCP to a TLS cluster: remove `tls: false`, then run this again")
	}
	st, err := l.TLSState(ctx)
	if err != nil {
		return nil, err
	}
	if st.Finished() {
		return nil, dcs.ErrTLSAlready
	}
	if err := l.CheckAcceptTLS(st); err != nil {
		return nil, err
	}
	pats, err := localPatroniOnDCS(ctx, env, l)
	if err != nil {
		return nil, err
	}
	if len(pats) > 0 && req.NoUser != nil {
		return nil, req.NoUser
	}
	res := &DCSTLSResult{}
	log := logging.From(ctx)
	for _, p := range pats {
		// Only a Patroni that restarts needs its cluster paused: a DCS
		// member's restart alone is a blip Patroni retries through.
		if p.paused || p.cfg.Etcd3.Protocol == "https" || slices.Contains(res.Paused, p.cfg.Scope) {
			continue
		}
		log.Info(fmt.Sprintf("pausing Patroni cluster %s: Patroni 3.0.2 reads its DCS TLS settings only when it starts, so each Patroni is restarted", p.cfg.Scope))
		if err := setPause(ctx, p, true); err != nil {
			return res, err
		}
		res.Paused = append(res.Paused, p.cfg.Scope)
	}
	fail := func(err error) (*DCSTLSResult, error) {
		if len(res.Paused) > 0 {
			err = fmt.Errorf("%w; Patroni cluster %v stays paused: run `pgherd dcs tls enable` again, then `pgherd patroni resume`", err, res.Paused)
		}
		return res, err
	}
	if res.Accepting, err = l.AcceptTLS(ctx, st, via); err != nil {
		return fail(err)
	}
	for _, p := range pats {
		if p.cfg.Etcd3.Protocol == "https" {
			continue
		}
		if err := patroniToTLS(ctx, env, l, p); err != nil {
			return fail(err)
		}
		res.Restarted = append(res.Restarted, p.i.ID())
	}
	if st, err = l.TLSState(ctx); err != nil {
		return fail(err)
	}
	if res.TLSOnly, err = l.RefusePlain(ctx, st); err != nil {
		return fail(err)
	}
	res.RemotePlain = st.RemotePlain
	for _, p := range pats {
		if !slices.Contains(res.Paused, p.cfg.Scope) || slices.Contains(res.Resumed, p.cfg.Scope) {
			continue
		}
		if err := setPause(ctx, p, false); err != nil {
			return res, err
		}
		res.Resumed = append(res.Resumed, p.cfg.Scope)
	}
	return res, nil
}

// DCSTLSRequest is what EnableDCSTLS switches.
type DCSTLSRequest struct {
	Local *dcs.Local // this host's members
	// Via is, with Local.JoinToken, the peer address of a member of the
	// host that printed the token.
	Via string
	// NoUser, when set, says why env.User, the account PostgreSQL runs
	// as, is unknown: no matter on a host without PostgreSQL (a witness's),
	// the error on a host with Patroni members, whose files it owns.
	NoUser error
}

// DCSTLSResult is what EnableDCSTLS did.
type DCSTLSResult struct {
	Paused, Resumed []string // Patroni clusters
	Accepting       []string // members now serving TLS beside plain TCP
	Restarted       []string // Patroni instances now on https
	TLSOnly         []string // members now on TLS only
	// RemotePlain are members of other hosts still on plain TCP: run the
	// command on their hosts, then here again.
	RemotePlain []string
}

// dcsPatroni is a local Patroni member whose DCS member is on this host.
type dcsPatroni struct {
	i      *Instance
	cfg    *patroni.Config
	client *patroni.Client
	member string // its DCS member
	paused bool
}

// localPatroniOnDCS finds this host's Patroni members of the embedded DCS
// and checks that each answers.
func localPatroniOnDCS(ctx context.Context, env *Env, l *dcs.Local) ([]*dcsPatroni, error) {
	all, err := List(env)
	if err != nil {
		return nil, err
	}
	cfgs, err := l.Configs()
	if err != nil {
		return nil, err
	}
	var out []*dcsPatroni
	for _, i := range all {
		if !i.PatroniManaged() {
			continue
		}
		cfg, client, err := i.PatroniClient()
		if err != nil {
			return nil, err
		}
		member := ""
		for _, c := range cfgs {
			if c.Role == dcs.RoleData && (c.Instance == i.ID() || c.Instance == "" && c.Name == cfg.Name) {
				member = c.Name
			}
		}
		if member == "" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cl, err := client.Cluster(cctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("Patroni of instance %s does not answer (%v): start it (`pgherd instance start %s`) before switching the DCS to TLS", i.ID(), err, i.ID())
		}
		out = append(out, &dcsPatroni{i: i, cfg: cfg, client: client, member: member, paused: cl.Pause})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].i.ID() < out[b].i.ID() })
	return out, nil
}

// setPause pauses or resumes p's cluster and waits until every member says
// so.
func setPause(ctx context.Context, p *dcsPatroni, pause bool) error {
	act := p.client.Resume
	if pause {
		act = p.client.Pause
	}
	if err := act(ctx); err != nil {
		return fmt.Errorf("cluster %s: %w", p.cfg.Scope, err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Duration(2*p.cfg.Bootstrap.DCS.LoopWait+10)*time.Second)
	defer cancel()
	return p.client.WaitPaused(wctx, pause)
}

// patroniToTLS gives p's Patroni its DCS client certificate, writes
// `protocol: https` into its YAML and restarts it (its cluster is paused,
// so PostgreSQL keeps running).
func patroniToTLS(ctx context.Context, env *Env, l *dcs.Local, p *dcsPatroni) error {
	t, err := l.IssuePatroni(p.member)
	if err != nil {
		return err
	}
	p.cfg.Etcd3.Protocol, p.cfg.Etcd3.CACert, p.cfg.Etcd3.Cert, p.cfg.Etcd3.Key = "https", t.CA, t.Cert, t.Key
	if err := p.cfg.WriteFile(p.i.PatroniConfig, patroniOwner(env)); err != nil {
		return err
	}
	logging.From(ctx).Info("restarting Patroni of instance " + p.i.ID() + " on https (PostgreSQL keeps running: the cluster is paused)")
	if err := env.Services.Stop(ctx, p.i.patroniService(env)); err != nil {
		return fmt.Errorf("stopping Patroni for %s: %w", p.i.ID(), err)
	}
	return startPatroni(ctx, env, p.i, p.cfg, false)
}
