package instance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/patroni"
	"github.com/pgherd/pgherd/pkg/witness"
)

// With patroni.dcs.kind: embedded (the default), each Patroni member has a
// data member of pgherd's DCS beside it, named like the Patroni node: the
// first instance of a cluster bootstraps the DCS, the next ones join it
// through --dcs-peer (default: a member already configured on this host).
// Patroni's etcd3 section lists every member's client address.

// DCSMemberRequest holds instance create's --dcs-* options.
type DCSMemberRequest struct {
	ListenPeer   string // HOST:PORT; "" means the PostgreSQL connect host and patroni.dcs.embedded.peer_port
	ListenClient string // HOST:PORT; "" means the connect host and patroni.dcs.embedded.client_port
	Peer         string // HOST:PORT of a member to join through; "" means a member on this host, else a new DCS
	Zone         string // "" means patroni.dcs.embedded.zone
	// Token is a data join token (`pgherd dcs token create --role data`)
	// for a host that holds none of the cluster's files.
	Token string
}

// memberEnv is this host's DCS members, where `pgherd dcs` keeps them,
// run by their own account (patroni.dcs.embedded.sysuser) when pgherd is
// root.
func memberEnv(env *Env) (*witness.Env, error) {
	u, err := env.Site.MemberUser()
	if err != nil {
		return nil, err
	}
	return &witness.Env{Local: &dcs.Local{Dir: filepath.Join(env.Site.Prefix, "dcs"), Exec: env.Pgherd, Services: env.Services,
		User: u.Service(), PatroniUser: env.User.Service(),
		QuotaBytes: env.Site.Patroni.DCS.Embedded.QuotaBytes, Snapshots: dcs.ScheduleOf(env.Site.Prefix, env.Site.Patroni.DCS.Embedded.Snapshots),
		Plain: !env.Site.Patroni.DCS.Embedded.TLS, Credentials: env.Site.PatroniCredentialsGlob()}}, nil
}

// dcsPlan is the DCS member instance create will add, and the client
// addresses (HOST:PORT) of the members already there (none for a new DCS).
type dcsPlan struct {
	req      witness.AddRequest
	existing []string
	via      string // the member on this host it joins through, said when it joins
	// undoTrust takes back what a token brought (CA, administrator's
	// credential, Patroni credentials) when the instance is not made.
	undoTrust func()
	// declared maps the Patroni members the existing data members arm
	// host-aware revocation for to the leader keys they declare them for.
	declared map[string]string
}

// planDCSMember decides the instance's DCS member and asks the DCS it will
// join for its members, without changing anything: what can be checked is
// checked before the member joins and changes the quorum.
func planDCSMember(ctx context.Context, env *Env, i *Instance, pr *PatroniRequest) (*dcsPlan, error) {
	if env.Pgherd == "" {
		return nil, errors.New("the embedded DCS needs the pgherd binary's path to run its member")
	}
	emb := env.Site.Patroni.DCS.Embedded
	req := witness.AddRequest{
		Name: firstNonEmpty(pr.Node, i.Name), Role: dcs.RoleData, Peer: pr.DCS.Peer,
		ListenPeer:   firstNonEmpty(pr.DCS.ListenPeer, net.JoinHostPort(pr.PGConnectHost, strconv.Itoa(emb.PeerPort))),
		ListenClient: firstNonEmpty(pr.DCS.ListenClient, net.JoinHostPort(pr.PGConnectHost, strconv.Itoa(emb.ClientPort))),
		Zone:         firstNonEmpty(pr.DCS.Zone, emb.Zone), Profile: emb.Profile,
		Instance: i.ID(),
	}
	mu, err := env.Site.MemberUser()
	if err != nil {
		return nil, err
	}
	// The member is named after the Patroni member beside it, and
	// declares it with its cluster's leader key: the DCS then keeps that
	// key from changing holder while its holder's lease lives, and, with
	// fast_failover, maps the key's holder to its host.
	req.FastFailover = dcs.FastFailover{LeaderKey: patroni.LeaderKey(env.Site.Patroni.DCS.Namespace, pr.Cluster), Node: req.Name}
	if d, _ := env.Site.Patroni.FastFailoverDetect(); d > 0 {
		req.FastFailover.Detect, req.FastFailover.LoopWait = time.Duration(d)*time.Second, time.Duration(env.Site.Patroni.LoopWait)*time.Second
		logging.From(ctx).Info(fmt.Sprintf("host-aware revocation: DCS member %s will declare Patroni member %s beside it (detect %d s)", req.Name, req.Name, d))
	}
	for _, l := range []struct{ what, addr string }{{"the DCS member's peer address", req.ListenPeer}, {"the DCS member's client address", req.ListenClient}} {
		if err := checkListen(env, mu, "the DCS member", l.what, l.addr); err != nil {
			return nil, err
		}
	}
	via := ""
	me, err := memberEnv(env)
	if err != nil {
		return nil, err
	}
	if req.Peer == "" {
		local, err := me.LocalMembers()
		if err != nil {
			return nil, err
		}
		if len(local) > 0 {
			req.Peer = firstNonEmpty(local[0].AdvertisePeer, local[0].ListenPeer)
			via = local[0].Name
		}
	}
	plan := &dcsPlan{req: req, via: via}
	if req.Peer == "" {
		return plan, nil
	}
	fail := func(err error) (*dcsPlan, error) {
		if plan.undoTrust != nil {
			plan.undoTrust()
		}
		return nil, err
	}
	if env.Site.Patroni.DCS.Embedded.TLS && pr.DCS.Token != "" {
		me.Local.JoinToken, plan.req.Token = pr.DCS.Token, pr.DCS.Token
		undo, err := me.Local.FetchTrust(ctx, req.Peer, req.Name)
		if err != nil {
			return nil, err
		}
		plan.undoTrust = undo
	}
	if env.Site.Patroni.DCS.Embedded.TLS {
		t, ok := me.Local.AdminClientTLS()
		if !ok {
			return fail(fmt.Errorf("%w (%s): give --dcs-token (`pgherd dcs token create --role data` on a data member's host prints one), or create this instance on a host of one of the cluster's data members", dcs.ErrNoCA, me.Local.PKI().Dir))
		}
		pr.dcsTLS = t
	}
	ac, err := dcs.NewAdminClient(req.Peer, me.Creds())
	if err != nil {
		return fail(err)
	}
	defer ac.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	members, err := ac.Members(cctx)
	if err != nil {
		return fail(fmt.Errorf("no DCS member answers at %s (%v): check --dcs-peer, the peer address of a running member", req.Peer, err))
	}
	plan.declared = map[string]string{}
	for _, m := range members {
		if h := clientHost(m.ClientURL); h != "" {
			plan.existing = append(plan.existing, h)
		}
		if d := m.FastFailover; d != nil && d.DetectS > 0 && m.Role == dcs.RoleData {
			plan.declared[d.Node] = d.LeaderKey
		}
	}
	return plan, nil
}

// checkFastFailoverMapped refuses host-aware revocation for a cluster
// whose running Patroni members (active) include one that no DCS data
// member declares for this cluster's leader key: its host's death would
// wait out the TTL, the rule could not map it to a host.
func checkFastFailoverMapped(env *Env, plan *dcsPlan, scope string, active []string) error {
	if d, _ := env.Site.Patroni.FastFailoverDetect(); d == 0 || plan == nil {
		return nil
	}
	key := patroni.LeaderKey(env.Site.Patroni.DCS.Namespace, scope)
	for _, m := range active {
		if plan.declared[m] != key {
			return fmt.Errorf("patroni.dcs.embedded.fast_failover: Patroni member %s of cluster %s cannot be mapped to a DCS member that declares it (it was created without fast_failover, or its DCS member has another name), so its host's death would not be detected: create it again with fast_failover, or set fast_failover.enabled: false", m, scope)
		}
	}
	return nil
}

// joinDCS creates and starts the planned DCS member and points the
// request's DCS hosts at every member's client address. It returns the
// undo of what it made.
func joinDCS(ctx context.Context, env *Env, i *Instance, pr *PatroniRequest, plan *dcsPlan) (func(), error) {
	switch log := logging.From(ctx); {
	case plan.via != "":
		log.Info(fmt.Sprintf("joining the DCS through member %s on this host (%s)", plan.via, plan.req.Peer))
	case plan.req.Peer == "":
		log.Info("no --dcs-peer and no DCS member on this host: starting a new embedded DCS")
	}
	me, err := memberEnv(env)
	if err != nil {
		return nil, err
	}
	res, err := witness.AddMember(ctx, me, plan.req)
	if err != nil {
		return nil, fmt.Errorf("setting up the DCS member of %s: %w", i.ID(), err)
	}
	if !me.Local.Plain {
		t, err := me.Local.IssuePatroni(plan.req.Name)
		if err != nil {
			_ = witness.RemoveMember(context.WithoutCancel(ctx), me, plan.req.Name)
			return nil, err
		}
		pr.dcsTLS = t
	}
	pr.DCSHosts = nil
	for _, m := range res.Members {
		if h := clientHost(m.ClientURL); h != "" {
			pr.DCSHosts = append(pr.DCSHosts, h)
		}
	}
	return func() { _ = witness.RemoveMember(context.WithoutCancel(ctx), me, plan.req.Name) }, nil
}

// shareDCSCredentials gives this host's DCS members, which run as an
// account of their own, their copy of the Patroni credentials, which they
// hand to a data member that joins with a token.
func shareDCSCredentials(env *Env) error {
	me, err := memberEnv(env)
	if err != nil {
		return err
	}
	return me.Local.ShareCredentials()
}

func clientHost(url string) string {
	return strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")
}

// dcsMemberOf returns the name of the instance's DCS data member on this
// host ("" when it has none): the one whose (root's) configuration names
// the instance. name, read from the Patroni YAML, only finds a member set
// up before members recorded their instance, and never one that records
// another instance.
func dcsMemberOf(env *Env, i *Instance, name string) (string, error) {
	me, err := memberEnv(env)
	if err != nil {
		if ms, _ := filepath.Glob(filepath.Join(env.Site.Prefix, "dcs", "*.yaml")); len(ms) == 0 {
			return "", nil // no member here: the members' account does not matter
		}
		return "", err
	}
	local, err := me.LocalMembers()
	if err != nil {
		return "", err
	}
	for _, c := range local {
		if c.Role == dcs.RoleData && c.Instance == i.ID() {
			return c.Name, nil
		}
	}
	for _, c := range local {
		if c.Name != name || c.Role != dcs.RoleData {
			continue
		}
		if c.Instance != "" {
			return "", fmt.Errorf("DCS member %s serves instance %s, not %s: not dropping %s (check name in %s)", name, c.Instance, i.ID(), i.ID(), i.PatroniConfig)
		}
		return name, nil
	}
	return "", nil
}

// dropDCSMember takes DCS member name ("" for none) out of the cluster and
// deletes it from this host.
func dropDCSMember(ctx context.Context, env *Env, name string) error {
	if name == "" {
		return nil
	}
	me, err := memberEnv(env)
	if err != nil {
		return err
	}
	return witness.RemoveMember(ctx, me, name)
}
