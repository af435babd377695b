// Package server is a member of pgherd's embedded DCS: the Raft node on
// the peer port and the etcd v3 API (gRPC and its JSON gateway) on the
// client port. It runs in the pgherd-dcs binary, never in the pgherd CLI.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/soheilhy/cmux"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/test/bufconn"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/dcs/mvcc"
	"github.com/pgherd/pgherd/pkg/logging"
)

// Server is a running member: the Raft node on the peer port and the etcd
// v3 API (gRPC and the JSON gateway) on the client port.
type Server struct {
	cfg    dcs.Config
	node   *node
	grpc   *grpc.Server
	http   *http.Server
	cmux   cmux.CMux
	mem    *bufconn.Listener
	gwConn *grpc.ClientConn
	client net.Listener
	lock   *os.File
}

// Serve runs a member until ctx is done. It is what `pgherd-dcs`
// calls. Because the daemon holds kilobytes of data, it caps the Go heap
// (GOMEMLIMIT 48 MiB unless the environment sets one) so that an idle
// member stays small.
func Serve(ctx context.Context, cfg dcs.Config) error {
	if debug.SetMemoryLimit(-1) == 1<<63-1 {
		debug.SetMemoryLimit(48 << 20)
	}
	s, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	log := logging.From(ctx)
	log.Info("dcs member serving", "name", s.cfg.Name, "peer", s.cfg.AdvertisePeer, "client", s.cfg.AdvertiseClient)
	if cfg.AcceptPlain {
		log.Warn("this member is switching to TLS (accept_plain): its ports accept plain TCP too until `pgherd dcs tls enable` finishes")
	} else if !cfg.PeerTLS.Enabled() || !cfg.ClientTLS.Enabled() || cfg.PeerTLS.CA == "" || cfg.ClientTLS.CA == "" {
		log.Warn("this member's ports are not both mutual TLS: anyone who reaches them can read and write the store, and join or remove members (patroni.dcs.embedded.tls: false)")
	}
	select {
	case <-ctx.Done():
	case err = <-s.node.fatal:
	case <-time.After(10 * time.Second): // start-up and joining are over
		releaseStartupPages()
		select {
		case <-ctx.Done():
		case err = <-s.node.fatal:
		}
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

// Start opens the data directory, starts Raft and both ports, and returns
// once they accept connections. An empty data directory means a new
// member: it bootstraps a one-member cluster, or, with cfg.Join, joins an
// existing one through any of those members; if that join fails, nothing
// stays behind (neither in the cluster nor in the data directory).
func Start(ctx context.Context, cfg dcs.Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ClusterID != "" && len(cfg.Join) == 0 && dcs.EmptyDir(cfg.DataDir) {
		return nil, fmt.Errorf("member %s of cluster %s has an empty data dir %s: its raft log is lost, and it will not bootstrap a new cluster in its place; %s",
			cfg.Name, cfg.ClusterID, cfg.DataDir, dcs.LostLogHint(cfg.Name))
	}
	fresh, err := dcs.OpenDataDir(cfg.DataDir, cfg.Name)
	if err != nil {
		return nil, err
	}
	if rec := dcs.RecordedCluster(cfg.DataDir); cfg.ClusterID != "" && rec != "" && rec != cfg.ClusterID {
		return nil, otherClusterError(cfg, rec)
	}
	lock, err := dcs.LockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	var peerLn, clientLn net.Listener
	fail := func(err error) (*Server, error) {
		for _, l := range []net.Listener{peerLn, clientLn} {
			if l != nil {
				l.Close()
			}
		}
		if fresh {
			dcs.ClearFresh(cfg.DataDir)
		}
		lock.Close()
		return nil, err
	}
	if peerLn, err = net.Listen("tcp", cfg.ListenPeer); err != nil {
		return fail(fmt.Errorf("listen_peer %s: %w", cfg.ListenPeer, err))
	}
	if clientLn, err = net.Listen("tcp", cfg.ListenClient); err != nil {
		return fail(fmt.Errorf("listen_client %s: %w", cfg.ListenClient, err))
	}
	if err := cfg.Advertise(peerLn.Addr(), clientLn.Addr()); err != nil {
		return fail(err)
	}
	switch ch, err := dcs.EnsureCertHosts(cfg); {
	case err != nil:
		return fail(err)
	case ch.Reissued:
		logging.From(ctx).Info("reissued this member's certificates for the addresses it now serves on", "peer", cfg.AdvertisePeer, "client", cfg.AdvertiseClient)
	case ch.Unnamed != "":
		logging.From(ctx).Warn("this member's certificates do not name "+ch.Unnamed+", an address it advertises: clients that check host names (Patroni) will refuse it", "peer", cfg.AdvertisePeer, "client", cfg.AdvertiseClient)
	}
	if fresh && len(cfg.Join) > 0 {
		if err := checkNotMember(ctx, cfg); err != nil {
			return fail(err)
		}
	}
	if fresh {
		if err := dcs.WriteIdentity(cfg.DataDir, cfg.Name, ""); err != nil {
			return fail(err)
		}
	}
	if !fresh && cfg.ForceNewCluster != "" {
		if err := forceNewCluster(cfg); err != nil {
			return fail(err)
		}
	}
	if fresh && cfg.RestoreFrom != "" {
		if err := seedFromSnapshot(cfg); err != nil {
			return fail(err)
		}
	}
	n, err := openNode(ctx, cfg, peerLn, fresh && cfg.RestoreFrom == "")
	if err != nil {
		return fail(err)
	}
	s := &Server{cfg: cfg, node: n, client: clientLn, lock: lock}
	if fresh && len(cfg.Join) > 0 {
		if err := n.joinThrough(ctx, cfg.Join); err != nil {
			n.close()
			return fail(err)
		}
	}
	if err := s.startClient(ctx); err != nil {
		n.close()
		return fail(err)
	}
	n.startSnapshots()
	return s, nil
}

// joinThrough asks each given member in turn to add this one.
func (n *node) joinThrough(ctx context.Context, peers []string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var errs []error
	for _, p := range peers {
		pc := n.peerClient(p)
		raw, _ := json.Marshal(joinRequest{Member: n.self(), ClusterID: n.cfg.ClusterID})
		_, err := pc.call(ctx, dcs.RPCJoin, raw)
		pc.close()
		if err == nil {
			n.log.Info("joined the cluster", "through", p)
			return nil
		}
		var de dcs.DialError
		if !errors.As(err, &de) {
			return fmt.Errorf("join through %s: %w", p, err)
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("cannot join: no member reachable (%w); check the peer addresses", errors.Join(errs...))
}

// otherClusterError refuses a data dir that holds cluster id, not the one
// cfg names.
func otherClusterError(cfg dcs.Config, id string) error {
	return fmt.Errorf("data dir %s holds a member of cluster %s, but member %s belongs to cluster %s: restore this member's own data dir, or %s",
		cfg.DataDir, id, cfg.Name, cfg.ClusterID, dcs.LostLogHint(cfg.Name))
}

// joinRequest is what RPCJoin carries: the member, and the cluster it
// expects to join when its configuration names one (older members send
// the member alone).
type joinRequest struct {
	dcs.Member
	ClusterID string `json:"cluster_id,omitempty"`
}

// checkNotMember asks the members at cfg.Join whether cfg.Name is already
// one of them, at this address. A member that is, yet starts with an empty data directory,
// lost its log: were it to start, it would vote with no memory of what it
// acknowledged, so it refuses before Raft starts. An unreachable member
// says nothing (joinThrough reports it).
func checkNotMember(ctx context.Context, cfg dcs.Config) error {
	ctls, err := cfg.PeerTLS.Client()
	if err != nil {
		return err
	}
	for _, p := range cfg.Join {
		pc := newPeerClient(p, ctls)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		raw, err := pc.call(cctx, dcs.RPCMembers, nil)
		cancel()
		pc.close()
		var ms []dcs.MemberStatus
		if err != nil || json.Unmarshal(raw, &ms) != nil {
			continue
		}
		for _, m := range ms {
			// Another address: a name clash, which join reports.
			if m.Name == cfg.Name && (m.PeerURL == "" || strings.HasSuffix(m.PeerURL, "://"+cfg.AdvertisePeer)) {
				return fmt.Errorf("member %s is already in the cluster but its data dir %s is empty: its raft log is lost, and it will not vote without it; %s",
					cfg.Name, cfg.DataDir, dcs.LostLogHint(cfg.Name))
			}
		}
		return nil
	}
	return nil
}

func (s *Server) startClient(ctx context.Context) error {
	tc, err := s.cfg.ClientTLS.Server("h2", "http/1.1")
	if err != nil {
		return err
	}
	ln := s.client
	switch {
	case tc != nil && s.cfg.AcceptPlain:
		ln = newSniffListener(ln, tc)
	case tc != nil:
		ln = tls.NewListener(ln, tc)
	}
	s.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(mvcc.MaxRequestBytes+512*1024),
		grpc.MaxConcurrentStreams(1<<20),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(recoverUnary(s.node.log)),
		grpc.ChainStreamInterceptor(recoverStream(s.node.log)),
	)
	pb.RegisterKVServer(s.grpc, &kvServer{s: s})
	pb.RegisterLeaseServer(s.grpc, &leaseServer{s: s})
	pb.RegisterWatchServer(s.grpc, &watchServer{s: s})
	pb.RegisterClusterServer(s.grpc, &clusterServer{s: s})
	pb.RegisterMaintenanceServer(s.grpc, &maintenanceServer{s: s})
	pb.RegisterAuthServer(s.grpc, &authServer{})

	// The gateway's in-memory connection is a pair of ring buffers that
	// its traffic cycles through, so all of their size ends up resident
	// once a few times their size has passed: 64 KiB each, not 1 MiB.
	// Larger messages just take a few turns.
	s.mem = bufconn.Listen(64 << 10)
	s.gwConn, err = grpc.NewClient("passthrough:///dcs",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.mem.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return err
	}
	gwh, err := newGateway(context.Background(), s.gwConn)
	if err != nil {
		return err
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	s.http = &http.Server{Handler: recoverHTTP(s.node.log, s.httpHandler(gwh)), Protocols: &protos, ReadHeaderTimeout: 10 * time.Second}

	s.cmux = cmux.New(ln)
	// gRPC's content-type may name the codec (application/grpc+proto).
	grpcL := s.cmux.MatchWithWriters(cmux.HTTP2MatchHeaderFieldPrefixSendSettings("content-type", "application/grpc"))
	httpL := s.cmux.Match(cmux.Any())
	go s.grpc.Serve(grpcL)
	go s.grpc.Serve(s.mem)
	go s.http.Serve(ackFilterListener{httpL})
	go s.cmux.Serve()
	return nil
}

// PeerAddr is the advertised peer address (host:port).
func (s *Server) PeerAddr() string { return s.cfg.AdvertisePeer }

// ClientURL is the advertised client URL.
func (s *Server) ClientURL() string { return s.cfg.AdvertiseClient }

// Name is the member's name.
func (s *Server) Name() string { return s.cfg.Name }

// Close stops serving clients, then leaves Raft running state on disk
// for the next start.
func (s *Server) Close() error {
	s.http.Close()
	s.grpc.Stop()
	s.cmux.Close()
	s.client.Close()
	s.gwConn.Close()
	s.mem.Close()
	err := s.node.close()
	s.lock.Close()
	return err
}
