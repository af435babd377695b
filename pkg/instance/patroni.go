package instance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgherd/pgherd/pkg/backup"
	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/names"
	"github.com/pgherd/pgherd/pkg/patroni"
	"github.com/pgherd/pgherd/pkg/postgres"
	"github.com/pgherd/pgherd/pkg/safefs"
	"github.com/pgherd/pgherd/pkg/service"
	"github.com/pgherd/pgherd/pkg/site"
	"github.com/pgherd/pgherd/pkg/supervise"
)

// An instance is managed by Patroni when its Patroni YAML exists (site
// patroni.configpath). Patroni then runs PostgreSQL: pgherd starts and
// stops Patroni's service and acts on PostgreSQL through Patroni's REST
// API, never with pg_ctl behind its back.

// PatroniRequest holds the --patroni-* options of instance create (the
// names are pglift's).
type PatroniRequest struct {
	Cluster            string   // Patroni scope; required
	Node               string   // member name; "" means the instance name
	RestAPIConnect     string   // HOST:PORT; "" means the PostgreSQL connect host and a free port from patroni.restapi_port
	RestAPIListen      string   // HOST:PORT; "" means RestAPIConnect
	PGConnectHost      string   // the address other members reach this one on; required
	ReplicationSSLCert string   // client certificate for replication (with ReplicationSSLKey)
	ReplicationSSLKey  string   //
	DCSHosts           []string // overrides patroni.dcs.hosts
	DCS                DCSMemberRequest
	// dcsTLS is the embedded DCS's client credential for Patroni's
	// etcd3 section (https, cacert, cert, key); empty on plain TCP.
	dcsTLS dcs.TLSConfig
}

// PatroniManaged reports whether Patroni runs this instance.
func (i *Instance) PatroniManaged() bool {
	_, err := os.Stat(i.PatroniConfig)
	return err == nil
}

// patroniPort is the port in the Patroni YAML, for a Patroni member.
func (i *Instance) patroniPort() (int, bool) {
	c, err := i.patroniConfig()
	if err != nil {
		return 0, false
	}
	_, p, err := net.SplitHostPort(c.PostgreSQL.ConnectAddress)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(p)
	return n, err == nil
}

// patroniConfig reads the instance's Patroni YAML.
func (i *Instance) patroniConfig() (*patroni.Config, error) {
	return patroni.ReadFile(i.PatroniConfig)
}

// patroniPgPass is the pgpass file Patroni writes for its own connections.
func (i *Instance) patroniPgPass() string {
	return filepath.Join(filepath.Dir(i.PatroniConfig), i.serviceName()+".pgpass")
}

// PatroniClient returns a client of the instance's own Patroni REST API.
func (i *Instance) PatroniClient() (*patroni.Config, *patroni.Client, error) {
	c, err := i.patroniConfig()
	if err == nil {
		var cl *patroni.Client
		if cl, err = patroni.ClientFor(c); err == nil {
			return c, cl, nil
		}
	}
	return nil, nil, fmt.Errorf("instance %s is managed by Patroni (%s): %w", i.ID(), i.PatroniConfig, err)
}

// patroniOwner is the owner of Patroni's files: the account it runs as.
func patroniOwner(env *Env) *patroni.Owner {
	if env.User.Switch {
		return &patroni.Owner{UID: int(env.User.UID), GID: int(env.User.GID)}
	}
	return &patroni.Owner{UID: os.Geteuid(), GID: os.Getegid()}
}

// patroniService describes the instance's Patroni for the service manager.
func (i *Instance) patroniService(env *Env) service.Service {
	s := service.Service{
		Kind:        service.KindPatroni,
		Instance:    i.serviceName(),
		Exec:        patroni.Command(env.Site.Patroni.Execpath, i.PatroniConfig),
		LogFile:     filepath.Join(i.patroniLogDir(env.Site), "patroni-start.log"),
		Description: "Patroni for instance " + i.ID(),
		User:        env.User.Service(),
		Fence:       i.fence(env),
	}
	return s
}

// fence is how the supervisor of the instance's Patroni stops its
// PostgreSQL when Patroni dies and is not back holding the leader key in
// time: as its Patroni YAML says, else from the site's timings.
func (i *Instance) fence(env *Env) *supervise.Fence {
	if c, err := i.patroniConfig(); err == nil && c.Bootstrap.DCS.TTL > c.Bootstrap.DCS.LoopWait {
		return c.Fence()
	}
	ps := env.Site.Patroni
	return &supervise.Fence{
		DataDir: i.DataDir, PgCtl: filepath.Join(i.BinDir, "pg_ctl"),
		TTL: time.Duration(ps.TTL) * time.Second, LoopWait: time.Duration(ps.LoopWait) * time.Second,
	}
}

func (i *Instance) patroniLogDir(s *site.Settings) string {
	return site.Path(s.Prefix, s.Patroni.Logpath, i.Version, i.Name)
}

func credentialsPath(s *site.Settings, cluster string) string {
	return site.Path(s.Prefix, strings.ReplaceAll(s.Patroni.Credentialspath, "{cluster}", cluster), "", "")
}

// patroniSpec builds the member's configuration from the site settings and
// the request.
func patroniSpec(env *Env, i *Instance, req *PatroniRequest, restConnect string, creds patroni.Credentials) patroni.Spec {
	ps, pg := env.Site.Patroni, env.Site.PostgreSQL
	hosts := ps.DCS.Hosts
	if len(req.DCSHosts) > 0 {
		hosts = req.DCSHosts
	}
	etcd := patroni.Etcd3{Hosts: hosts, Protocol: ps.DCS.Protocol, CACert: ps.DCS.CACert, Cert: ps.DCS.Cert, Key: ps.DCS.Key}
	if t := req.dcsTLS; t.Enabled() {
		etcd = patroni.Etcd3{Hosts: hosts, Protocol: "https", CACert: t.CA, Cert: t.Cert, Key: t.Key}
	}
	return patroni.Spec{
		Cluster: req.Cluster, Namespace: ps.DCS.Namespace, Node: firstNonEmpty(req.Node, i.Name),
		RestAPIConnect: restConnect, RestAPIListen: req.RestAPIListen,
		PGConnectHost: req.PGConnectHost, PGPort: i.Port,
		DataDir: i.DataDir, BinDir: i.BinDir, SocketDir: i.SocketDir,
		PgPass: i.patroniPgPass(),
		LogDir: i.patroniLogDir(env.Site), Etcd: etcd,
		Timings:               patroni.Timings{TTL: ps.TTL, LoopWait: ps.LoopWait, RetryTimeout: ps.RetryTimeout},
		MaximumLagOnFailover:  ps.MaximumLagOnFailover,
		SynchronousMode:       ps.SynchronousMode,
		SynchronousModeStrict: ps.SynchronousModeStrict,
		FailsafeMode:          ps.FailsafeMode,
		Parameters: map[string]string{
			// As for any pgherd instance: the server logs to the instance's log directory.
			"logging_collector": "on",
			"log_directory":     i.LogDir,
			"log_filename":      i.serviceName() + "-%Y-%m-%d_%H%M%S.log",
			"log_line_prefix":   "%m [%p] %q%u@%d ",
		},
		Credentials:        creds,
		SuperuserName:      pg.Surole.Name,
		ReplicationName:    pg.Replrole.Name,
		ReplicationSSLCert: req.ReplicationSSLCert,
		ReplicationSSLKey:  req.ReplicationSSLKey,
		Encoding:           pg.Initdb.Encoding,
		Locale:             pg.Initdb.Locale,
		DataChecksums:      pg.Initdb.DataChecksums,
		Watchdog:           ps.Watchdog,
	}
}

// checkPatroniRequest refuses what a Patroni member cannot do, before
// anything is made.
func checkPatroniRequest(env *Env, req CreateRequest) error {
	p := req.Patroni
	if err := names.Check("cluster", p.Cluster); err != nil {
		return err
	}
	if p.Node != "" {
		if err := names.Check("member", p.Node); err != nil {
			return err
		}
	}
	embedded := env.Site.Patroni.DCS.Kind != site.DCSEtcd
	switch {
	case embedded && len(p.DCSHosts) > 0:
		return errors.New("--patroni-dcs-hosts applies to an external etcd (patroni.dcs.kind: etcd); with the embedded DCS use --dcs-peer to join an existing member")
	case !embedded && p.DCS != (DCSMemberRequest{}):
		return errors.New("--dcs-* options set up pgherd's embedded DCS, but site.yaml says patroni.dcs.kind: etcd")
	case !embedded && len(env.Site.Patroni.DCS.Hosts) == 0 && len(p.DCSHosts) == 0:
		return errors.New("no DCS hosts: set patroni.dcs.hosts in site.yaml or give --patroni-dcs-hosts HOST:PORT")
	case p.PGConnectHost == "":
		return errors.New("--patroni-postgresql-connect-host is required: the address other members reach this one on (on one machine, a loopback address such as 127.0.1.1)")
	case req.SuperuserPassword != "":
		return errors.New("--surole-password-file does not apply to a Patroni member: pgherd generates the cluster's passwords")
	case req.State == Stopped:
		return errors.New("--state stopped does not apply to a Patroni member: Patroni creates the data directory when it starts")
	}
	if err := patroni.ValidateTimings(patroni.Timings{TTL: env.Site.Patroni.TTL, LoopWait: env.Site.Patroni.LoopWait, RetryTimeout: env.Site.Patroni.RetryTimeout}); err != nil {
		return err
	}
	_, err := env.Site.Patroni.FastFailoverDetect()
	return err
}

// chooseRestAPI returns the REST connect address: the requested one, or the
// PostgreSQL connect host with the first free port from patroni.restapi_port.
func chooseRestAPI(env *Env, req *PatroniRequest) (string, error) {
	if req.RestAPIListen != "" {
		if err := checkListen(env, env.User, postgresAccount, "--patroni-restapi-listen", req.RestAPIListen); err != nil {
			return "", err
		}
	}
	if req.RestAPIConnect != "" {
		if req.RestAPIListen == "" {
			return req.RestAPIConnect, checkListen(env, env.User, postgresAccount, "--patroni-restapi-connect-address", req.RestAPIConnect)
		}
		return req.RestAPIConnect, nil
	}
	start := env.Site.Patroni.RestapiPort
	for p := start; p < start+100 && p <= 65535; p++ {
		l, err := net.Listen("tcp", net.JoinHostPort(req.PGConnectHost, strconv.Itoa(p)))
		if err == nil {
			l.Close()
			return net.JoinHostPort(req.PGConnectHost, strconv.Itoa(p)), nil
		}
	}
	return "", fmt.Errorf("no free REST API port in %d-%d on %s: give --patroni-restapi-connect-address", start, start+99, req.PGConnectHost)
}

// createPatroni makes a Patroni member: configuration, validation, service,
// start; the first member of a cluster bootstraps it, the next ones clone
// the leader. All-or-nothing: on failure what was made is undone.
func createPatroni(ctx context.Context, env *Env, i *Instance, req CreateRequest) (*Instance, error) {
	log := logging.From(ctx)
	pr := req.Patroni
	exe, err := patroni.FindPatroni(env.Site.Patroni.Execpath)
	if err != nil {
		return nil, err
	}
	if i.PatroniManaged() {
		return nil, fmt.Errorf("%s already exists: drop instance %s first", i.PatroniConfig, i.ID())
	}
	rest, err := chooseRestAPI(env, pr)
	if err != nil {
		return nil, err
	}
	owner := patroniOwner(env)
	// Everything that can fail is checked before the member joins the
	// DCS (which changes its quorum), then files and services follow.
	var plan *dcsPlan
	memberOK := true
	trustKept := false // what a --dcs-token brought stays only with the instance
	if env.Site.Patroni.DCS.Kind != site.DCSEtcd {
		if plan, err = planDCSMember(ctx, env, i, pr); err != nil {
			return nil, err
		}
		pr.DCSHosts = append(append([]string{}, plan.existing...), plan.req.ListenClient)
		if plan.undoTrust != nil {
			defer func() {
				if !trustKept {
					plan.undoTrust()
				}
			}()
		}
	}
	credFile := credentialsPath(env.Site, pr.Cluster)
	cfg := patroni.New(patroniSpec(env, i, pr, rest, patroni.Credentials{Superuser: "-", Replication: "-", Rewind: "-", RestAPI: "-"}))
	backsUp := env.Site.PgBackRest != nil
	var bi backup.Instance
	if backsUp {
		if bi, err = clusterBackupInstance(env, i, cfg.Scope); err != nil {
			return nil, err
		}
		configureMemberBackups(env, bi, i, cfg)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var st patroni.DCSState
	if plan == nil || len(plan.existing) > 0 {
		if err := patroni.CheckDCSReachable(ctx, cfg, 5*time.Second); err != nil {
			return nil, err
		}
		if st, err = patroni.ReadDCSState(ctx, cfg); err != nil {
			return nil, err
		}
	}
	for _, m := range st.Active("") {
		if m == cfg.Name {
			return nil, fmt.Errorf("member name %s is already used in Patroni cluster %s: choose another with --patroni-node", cfg.Name, cfg.Scope)
		}
	}
	if err := checkFastFailoverMapped(env, plan, cfg.Scope, st.Active("")); err != nil {
		return nil, err
	}
	if st.Initialized && st.Leader == "" && len(st.Active("")) == 0 {
		return nil, fmt.Errorf("Patroni cluster %s is initialised in the DCS but has no leader and no running member, so a new member could not clone it: start one of its members, or remove the cluster (drop its last member with --purge-cluster, or delete its keys: etcdctl del --prefix %s)", cfg.Scope, patroni.ClusterPrefix(cfg))
	}
	if _, err := os.Stat(credFile); st.Initialized && errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("Patroni cluster %s already exists (leader %q) and its credentials are not on this host: copy %s from a member here first", cfg.Scope, st.Leader, credFile)
	}
	if backsUp {
		if err := checkMemberBackups(env, bi, !st.Initialized); err != nil {
			return nil, err
		}
	}
	// The validator, run as the sysuser, reads a copy under $TMPDIR.
	if err := env.User.Service().Reach(filepath.Join(os.TempDir(), "pgherd-patroni-validate.yaml")); err != nil {
		return nil, fmt.Errorf("%w, or set TMPDIR to a directory it can reach", err)
	}
	log.Info("validating Patroni configuration " + i.PatroniConfig)
	if err := cfg.ValidateBeforeDCS(ctx, env.Runner, exe, i.PatroniConfig, owner); err != nil {
		return nil, err
	}
	if plan != nil {
		undoMember, err := joinDCS(ctx, env, i, pr, plan)
		if err != nil {
			return nil, err
		}
		memberOK = false
		defer func() {
			if !memberOK {
				undoMember()
			}
		}()
	}

	var u undo
	ok := false
	defer func() {
		if !ok {
			u.run()
		}
	}()
	for _, d := range []string{filepath.Dir(i.DataDir), i.LogDir, i.SocketDir, i.patroniLogDir(env.Site)} {
		if err := mkdirs(d, 0o755, env.User, &u); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{filepath.Dir(i.PatroniConfig), filepath.Dir(credFile), filepath.Dir(i.PassFile)} {
		if err := mkdirs(d, 0o700, env.User, &u); err != nil {
			return nil, err
		}
	}
	u.add(func() { os.RemoveAll(i.DataDir); os.RemoveAll(i.WALDir) })
	creds, created, err := patroni.LoadOrCreateCredentials(credFile, owner)
	if err != nil {
		return nil, err
	}
	if created {
		u.add(func() {
			os.Remove(credFile)
			if plan == nil {
				return
			}
			// The DCS members' copy goes with the file: no copy of a
			// cluster that was not made stays on this host.
			if err := shareDCSCredentials(env); err != nil {
				log.Warn("the DCS members' copy of the credentials of cluster "+pr.Cluster+", which was not made, could not be taken back", "err", err)
			}
		})
	}
	if plan != nil {
		if err := shareDCSCredentials(env); err != nil {
			return nil, err
		}
	}
	cfg = patroni.New(patroniSpec(env, i, pr, rest, creds))
	if backsUp {
		configureMemberBackups(env, bi, i, cfg)
	}
	u.add(func() { os.Remove(i.PatroniConfig) })
	if err := cfg.WriteFile(i.PatroniConfig, owner); err != nil {
		return nil, err
	}
	// pgherd's own superuser connections (instance get, pgconf) read this pgpass.
	line := fmt.Sprintf("*:*:*:%s:%s\n", env.Site.PostgreSQL.Surole.Name, creds.Superuser.Reveal())
	u.add(func() { os.Remove(i.PassFile) })
	if err := safefs.WriteOwned(i.PassFile, []byte(line), env.User.FileOwner()); err != nil {
		return nil, err
	}
	if backsUp {
		// Again: the member's password file exists now.
		if bi, err = clusterBackupInstance(env, i, cfg.Scope); err != nil {
			return nil, err
		}
		if err := writeMemberBackupFile(env, bi, i, &u); err != nil {
			return nil, err
		}
	}
	// Patroni runs as the sysuser, and a file it cannot open reads as an
	// empty configuration.
	if err := env.User.Service().Reach(i.PatroniConfig); err != nil {
		return nil, fmt.Errorf("%w, or choose another prefix in site.yaml", err)
	}
	switch {
	case st.Initialized && st.Leader != "":
		log.Info(fmt.Sprintf("joining Patroni cluster %s as %s (leader %s)", cfg.Scope, cfg.Name, st.Leader))
	case st.Initialized:
		log.Info(fmt.Sprintf("joining Patroni cluster %s as %s", cfg.Scope, cfg.Name))
	default:
		log.Info(fmt.Sprintf("bootstrapping Patroni cluster %s with %s", cfg.Scope, cfg.Name))
	}
	if !st.Initialized {
		// A failed bootstrap must not leave a cluster behind in the DCS: the
		// next attempt would find it initialised, with no member to clone.
		// (Unless another member runs in it: it won a concurrent bootstrap.)
		u.add(func() {
			uctx := context.WithoutCancel(ctx)
			if now, err := patroni.ReadDCSState(uctx, cfg); err == nil && len(now.Active(cfg.Name)) == 0 {
				_, _ = patroni.PurgeDCS(uctx, cfg)
			}
		})
	}
	svc := i.patroniService(env)
	if err := env.Services.Install(ctx, svc); err != nil {
		return nil, fmt.Errorf("installing the Patroni service of %s: %w", i.ID(), err)
	}
	u.add(func() { _ = env.Services.Uninstall(context.WithoutCancel(ctx), svc) })
	u.add(func() { _ = env.Services.Stop(context.WithoutCancel(ctx), svc) })
	if err := startPatroni(ctx, env, i, cfg, !st.Initialized); err != nil {
		return nil, err
	}
	if backsUp && !st.Initialized {
		// The member leads now: the stanza is the last thing made.
		if err := BackupEnv(env).CreateStanza(ctx, bi); err != nil {
			return nil, err
		}
	}
	ok, memberOK, trustKept = true, true, true
	return i, nil
}

// startPatroni starts the instance's Patroni and waits until its REST API
// says it is ready (and, when it bootstraps the cluster, that it leads it),
// logging Patroni's lines at debug meanwhile.
func startPatroni(ctx context.Context, env *Env, i *Instance, cfg *patroni.Config, bootstrap bool) error {
	logging.From(ctx).Info("starting Patroni for instance " + i.ID())
	if err := env.Services.Start(ctx, i.patroniService(env)); err != nil {
		return fmt.Errorf("starting Patroni for %s: %w", i.ID(), err)
	}
	client, err := patroni.ClientFor(cfg)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	// Patroni's log and the server's, including log files it creates meanwhile.
	files := []string{cfg.Log.File(), filepath.Join(i.LogDir, i.serviceName()+"-*.log")}
	if err := patroni.WaitStarted(wctx, client, cfg.Name, bootstrap, files); err != nil {
		return fmt.Errorf("%w; see 'pgherd patroni logs %s'", err, i.ID())
	}
	return nil
}

// patroniStart starts a stopped member.
func patroniStart(ctx context.Context, env *Env, i *Instance) error {
	cfg, err := i.patroniConfig()
	if err != nil {
		return err
	}
	svc := i.patroniService(env)
	if st, err := env.Services.Status(ctx, svc); err == nil && st.Running {
		// Symmetric with stop: nothing to do, except supervising again a
		// Patroni that a crashed (or detached) supervisor left running.
		if st.Supervision == "unsupervised" {
			if err := env.Services.Start(ctx, svc); err != nil && !errors.Is(err, service.ErrAlreadyRunning) {
				return fmt.Errorf("supervising Patroni of %s again: %w", i.ID(), err)
			}
		}
		logging.From(ctx).Info("Patroni of instance " + i.ID() + " is already running")
		return nil
	}
	return startPatroni(ctx, env, i, cfg, false)
}

// patroniStop stops Patroni, which stops PostgreSQL and releases the leader
// key when it holds it. In maintenance mode Patroni leaves PostgreSQL
// running when it stops; nothing manages it any more then, so pgherd asks
// the postmaster for a fast shutdown itself.
func patroniStop(ctx context.Context, env *Env, i *Instance) error {
	log := logging.From(ctx)
	log.Info("stopping Patroni for instance " + i.ID())
	if err := env.Services.Stop(ctx, i.patroniService(env)); err != nil {
		return fmt.Errorf("stopping Patroni for %s: %w", i.ID(), err)
	}
	p, ok := postgres.Running(i.DataDir)
	if !ok {
		return nil
	}
	log.Warn("Patroni left PostgreSQL " + i.ID() + " running (its cluster is paused): stopping it")
	if err := syscall.Kill(p.PID, stopSignal); err != nil {
		return fmt.Errorf("stopping PostgreSQL %s: %w", i.ID(), err)
	}
	deadline := time.Now().Add(StartTimeout)
	for postgres.Alive(p.PID) {
		if time.Now().After(deadline) {
			return fmt.Errorf("PostgreSQL %s (PID %d) still runs after %s", i.ID(), p.PID, StartTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// patroniRestart restarts PostgreSQL through Patroni's REST API.
func patroniRestart(ctx context.Context, i *Instance) error {
	_, c, err := i.PatroniClient()
	if err != nil {
		return err
	}
	logging.From(ctx).Info("restarting PostgreSQL instance " + i.ID() + " through Patroni")
	_, err = c.Restart(ctx, patroni.RestartRequest{})
	return err
}

// patroniReload makes Patroni re-read its YAML and reload PostgreSQL.
func patroniReload(ctx context.Context, i *Instance) error {
	_, c, err := i.PatroniClient()
	if err != nil {
		return err
	}
	logging.From(ctx).Info("reloading PostgreSQL instance " + i.ID() + " through Patroni")
	return c.Reload(ctx)
}

// patroniDrop stops and removes the member's Patroni: service, YAML (a
// timestamped copy is kept when it was the cluster's last member) and log.
// With purge, the cluster's keys and credentials go too, before the
// member's DCS member leaves (the last one takes the DCS with it); a
// cluster with other running members is refused before anything stops.
func patroniDrop(ctx context.Context, env *Env, i *Instance, purge bool) (int64, error) {
	log := logging.From(ctx)
	cfg, err := i.patroniConfig()
	if err != nil {
		return 0, err
	}
	if purge {
		st, err := patroni.ReadDCSState(ctx, cfg)
		if err != nil {
			return 0, fmt.Errorf("--purge-cluster: cannot read Patroni cluster %s from the DCS: %w; nothing was dropped", cfg.Scope, err)
		}
		if others := st.Active(cfg.Name); len(others) > 0 {
			return 0, fmt.Errorf("--purge-cluster: Patroni cluster %s still has running members (%s): drop them first; nothing was dropped", cfg.Scope, strings.Join(others, ", "))
		}
	}
	member, err := dcsMemberOf(env, i, cfg.Name)
	if err != nil {
		return 0, err
	}
	if err := patroniStop(ctx, env, i); err != nil {
		return 0, err
	}
	if err := env.Services.Uninstall(ctx, i.patroniService(env)); err != nil {
		return 0, fmt.Errorf("removing the Patroni service of %s: %w", i.ID(), err)
	}
	st, err := patroni.ReadDCSState(ctx, cfg)
	last := err == nil && len(st.Active(cfg.Name)) == 0
	if err != nil {
		log.Warn("cannot tell whether " + cfg.Name + " was the last member of cluster " + cfg.Scope + ": " + err.Error())
	}
	if last || err != nil {
		bak, berr := patroni.BackupFile(i.PatroniConfig, time.Now())
		if berr != nil {
			return 0, berr
		}
		log.Warn(fmt.Sprintf("%s was the last member of Patroni cluster %s: its configuration is kept in %s", cfg.Name, cfg.Scope, bak))
	}
	var purged int64
	if purge {
		if purged, err = PurgePatroniCluster(ctx, env, cfg); err != nil {
			return 0, err
		}
	}
	if err := os.Remove(i.PatroniConfig); err != nil {
		return purged, err
	}
	// The pgpass file Patroni writes: where pgherd put it, never a path
	// read from a YAML in a directory Patroni's account can write.
	if err := os.Remove(i.patroniPgPass()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return purged, err
	}
	if err := dropDCSMember(ctx, env, member); err != nil {
		return purged, err
	}
	return purged, os.RemoveAll(i.patroniLogDir(env.Site))
}

// describePatroni is the "patroni" object of instance get.
func describePatroni(ctx context.Context, env *Env, i *Instance) *patroni.Info {
	cfg, c, err := i.PatroniClient()
	if err != nil {
		return nil
	}
	info, err := patroni.Describe(ctx, cfg, c)
	if err != nil {
		logging.From(ctx).Warn("Patroni's REST API does not answer: " + err.Error())
	}
	info.FastFailover = FastFailover(ctx, env, i, cfg, c)
	return &info
}

// PatroniLogFiles returns Patroni's log file of a member and, with
// postgres, the server's current log file.
func PatroniLogFiles(i *Instance, postgres bool) ([]string, error) {
	cfg, err := i.patroniConfig()
	if err != nil {
		return nil, fmt.Errorf("instance %s is not managed by Patroni: %w", i.ID(), err)
	}
	files := []string{cfg.Log.File()}
	if postgres {
		if f := currentLogFile(i); f != "" {
			files = append(files, f)
		}
	}
	return files, nil
}

// PurgePatroniCluster removes cluster cfg from the DCS (its keys) and this
// host's copy of its credentials, once no member runs any more. It returns
// how many keys it deleted.
func PurgePatroniCluster(ctx context.Context, env *Env, cfg *patroni.Config) (int64, error) {
	st, err := patroni.ReadDCSState(ctx, cfg)
	if err != nil {
		return 0, err
	}
	if active := st.Active(""); len(active) > 0 {
		return 0, fmt.Errorf("Patroni cluster %s still has running members (%s): drop them first", cfg.Scope, strings.Join(active, ", "))
	}
	logging.From(ctx).Info("removing Patroni cluster " + cfg.Scope + " from the DCS")
	n, err := patroni.PurgeDCS(ctx, cfg)
	if err != nil {
		return 0, err
	}
	cred := credentialsPath(env.Site, cfg.Scope)
	if err := os.Remove(cred); err != nil && !errors.Is(err, os.ErrNotExist) {
		return n, err
	}
	if env.Site.Patroni.DCS.Kind == site.DCSEmbedded {
		// The DCS members' copy, which they hand to a data newcomer, goes
		// with the file.
		if err := shareDCSCredentials(env); err != nil {
			return n, err
		}
	}
	return n, nil
}

// FindPatroniMember returns a local instance that is a member of Patroni
// cluster cluster.
func FindPatroniMember(env *Env, cluster string) (*Instance, error) {
	all, err := List(env)
	if err != nil {
		return nil, err
	}
	for _, i := range all {
		if c, err := i.patroniConfig(); err == nil && c.Scope == cluster {
			return i, nil
		}
	}
	return nil, fmt.Errorf("%w: no local instance is a member of Patroni cluster %s", ErrNotFound, cluster)
}

// FindPatroniMemberNamed returns the local instance that is member name of
// Patroni cluster cluster.
func FindPatroniMemberNamed(env *Env, cluster, name string) (*Instance, error) {
	all, err := List(env)
	if err != nil {
		return nil, err
	}
	for _, i := range all {
		if c, err := i.patroniConfig(); err == nil && c.Scope == cluster && c.Name == name {
			return i, nil
		}
	}
	return nil, fmt.Errorf("%w: member %s of Patroni cluster %s is not on this host", ErrNotFound, name, cluster)
}
