package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/logging"
)

// node is one Raft member: the log, the state machine and the peer port.
type node struct {
	cfg    dcs.Config
	log    *slog.Logger
	raft   *raft.Raft
	fsm    *fsm
	logs   *wal.WAL
	meta   *metadb.BoltMetaDB
	trans  *raft.NetworkTransport
	peer   *peerListener
	ptls   *tls.Config // client side of peer TLS
	id     uint64
	closed chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	clients map[string]*peerClient

	readyTerm atomic.Uint64 // term in which this leader has committed an entry

	joins chan struct{} // one slot per join being handled (maxConcurrentJoins)
	// fatal receives an error that the member must not run on with: the
	// cluster version exceeds what this binary applies (it was
	// downgraded), or the cluster is not the configuration's. Serve stops.
	fatal chan error

	// votingMu serialises suffrage changes: the reconcile loop must not
	// undo a witness promotion made for a removal still under way.
	votingMu sync.Mutex

	contacts *contacts   // the leader's heartbeats (heartbeat.go)
	revoked  revocations // host-aware revocations made (revoke.go)
	// turningAway is set while this member has known no leader for longer
	// than an election timeout (turnaway.go).
	turningAway atomic.Bool
}

func openNode(ctx context.Context, cfg dcs.Config, ln net.Listener, fresh bool) (*node, error) {
	log := logging.From(ctx).With("member", cfg.Name)
	stls, err := cfg.PeerTLS.Server()
	if err != nil {
		return nil, err
	}
	ctls, err := cfg.PeerTLS.Client()
	if err != nil {
		return nil, err
	}
	n := &node{cfg: cfg, log: log, fsm: newFSM(cfg.HistoryLimit), ptls: ctls, id: dcs.MemberID(cfg.Name),
		closed: make(chan struct{}), clients: map[string]*peerClient{}, joins: make(chan struct{}, maxConcurrentJoins),
		fatal: make(chan error, 1), contacts: newContacts()}
	n.fsm.log = log
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: slogWriter{log}})
	// The log and stable store is raft-wal: one fsync per appended batch,
	// where raft-boltdb needs two per commit (see DESIGN.md).
	walDir := filepath.Join(cfg.DataDir, dcs.WALDir)
	if err := dcs.MkdirPrivate(walDir); err != nil {
		return nil, fmt.Errorf("create raft log dir: %w", err)
	}
	logs, meta, err := openLogStore(walDir, hl)
	if err != nil {
		return nil, err
	}
	n.logs, n.meta = logs, meta
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hl)
	if err != nil {
		logs.Close()
		n.meta.Close()
		return nil, fmt.Errorf("open snapshots: %w", err)
	}
	n.peer = newPeerListener(ln, stls, ctls, log)
	n.peer.acceptPlain = cfg.AcceptPlain
	n.peer.rpc = func(c net.Conn) { serveRPCConn(context.Background(), c, n.handleRPC, log) }
	n.peer.hello, n.peer.foreign = n.raftHello, n.foreignCluster
	n.peer.admitRaft = n.admitRaft
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: n.peer, MaxPool: 8, Timeout: 10 * time.Second, Logger: hl,
	})
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.Name)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.HeartbeatTimeout
	rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	// Raft's default. New entries go to followers at once; this timer only
	// carries the commit index when no write follows. 5 ms cost an idle
	// leader 14% of a core; 50 ms costs 3%, and an idle follower applies a
	// write (and wakes its watchers) up to ~100 ms after the commit.
	rc.CommitTimeout = 50 * time.Millisecond
	rc.MaxAppendEntries = 512
	rc.BatchApplyCh = true
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.Logger = hl
	rc.NoLegacyTelemetry = true

	has, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		logs.Close()
		n.meta.Close()
		return nil, fmt.Errorf("read raft state: %w", err)
	}
	if !fresh && !has {
		logs.Close()
		n.meta.Close()
		return nil, fmt.Errorf("data dir %s has an empty raft log: member %s lost it; restore it from a backup, or %s", cfg.DataDir, cfg.Name, dcs.LostLogHint(cfg.Name))
	}
	r, err := raft.NewRaft(rc, n.fsm, logs, logs, snaps, n.trans)
	if err != nil {
		n.peer.Close()
		logs.Close()
		n.meta.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	// Accept peers only now: RPC handlers need n.raft.
	go n.peer.serve()
	if fresh && len(cfg.Join) == 0 {
		f := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: rc.LocalID, Address: raft.ServerAddress(cfg.AdvertisePeer)}}})
		if err := f.Error(); err != nil {
			n.close()
			return nil, fmt.Errorf("bootstrap cluster: %w", err)
		}
	}
	n.wg.Add(3)
	go n.leaderLoop()
	go n.heartbeatLoop()
	go n.contactLoop()
	return n, nil
}

// maxConcurrentJoins bounds the joins a member handles at once; more are
// refused with "retry in a moment".
const maxConcurrentJoins = 2

// openLogStore opens the Raft log and stable store in dir. WAL.Close
// leaves its meta store open (raft-wal v0.4.x), so the caller owns meta
// and closes it after the log.
func openLogStore(dir string, hl hclog.Logger) (*wal.WAL, *metadb.BoltMetaDB, error) {
	meta := &metadb.BoltMetaDB{}
	logs, err := wal.Open(dir, wal.WithSegmentSize(16<<20), wal.WithLogger(hl), wal.WithMetaStore(meta))
	if err != nil {
		meta.Close()
		return nil, nil, fmt.Errorf("open raft log %s: %w; it is damaged: restore the data dir from a backup, or remove this member and join a new one", dir, err)
	}
	return logs, meta, nil
}

func (n *node) close() error {
	select {
	case <-n.closed:
		return nil
	default:
	}
	close(n.closed)
	n.wg.Wait()
	err := n.raft.Shutdown().Error()
	n.trans.Close()
	n.peer.Close()
	n.mu.Lock()
	for _, c := range n.clients {
		c.close()
	}
	n.mu.Unlock()
	if cerr := n.logs.Close(); err == nil {
		err = cerr
	}
	if cerr := n.meta.Close(); err == nil {
		err = cerr
	}
	return err
}

func (n *node) client(addr string) *peerClient {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.clients[addr]
	if !ok {
		c = n.peerClient(addr)
		n.clients[addr] = c
	}
	return c
}

// leaderAddr returns the current leader's peer address, or "".
func (n *node) leaderAddr() string {
	a, _ := n.raft.LeaderWithID()
	return string(a)
}

func (n *node) isLeader() bool { return n.raft.State() == raft.Leader }

// inContact reports whether this member is the leader or has heard from one
// within a heartbeat timeout.
func (n *node) inContact() bool {
	if n.isLeader() {
		return true
	}
	return n.leaderAddr() != "" && time.Since(n.raft.LastContact()) < n.cfg.HeartbeatTimeout
}

func applyTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl)
	}
	return 10 * time.Second
}

// propose commits cmd through the leader and returns the state machine's
// answer. A follower forwards the encoded command to the leader. A call is
// retried only when it certainly did not reach a leader's log (not leader,
// no leader yet, leader unreachable), so a command is never applied twice.
func (n *node) propose(ctx context.Context, cmd []byte) (message, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	for {
		var resp message
		var err error
		if n.isLeader() {
			resp, err = n.applyLocal(ctx, cmd)
		} else if addr := n.leaderAddr(); addr != "" {
			resp, err = n.forward(ctx, addr, cmd)
		} else {
			err = dcs.ErrNotLeader
		}
		var de dcs.DialError
		if err == nil || !(errors.Is(err, dcs.ErrNotLeader) || errors.As(err, &de)) {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return nil, rpctypes.ErrGRPCNoLeader
		case <-n.closed:
			return nil, rpctypes.ErrGRPCStopped
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (n *node) applyLocal(ctx context.Context, cmd []byte) (message, error) {
	if err := n.checkQuota(ctx, cmd); err != nil {
		return nil, err
	}
	f := n.raft.Apply(cmd, applyTimeout(ctx))
	if err := f.Error(); err != nil {
		return nil, mapRaftError(err)
	}
	r, ok := f.Response().(*applyResult)
	if !ok || r == nil {
		return nil, nil
	}
	return r.resp, r.err
}

func mapRaftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return dcs.ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return rpctypes.ErrGRPCLeaderChanged
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return rpctypes.ErrGRPCTimeout
	case errors.Is(err, raft.ErrRaftShutdown):
		return rpctypes.ErrGRPCStopped
	}
	return err
}

// forward sends cmd to the leader at addr. The reply is the op byte and
// the marshaled response.
func (n *node) forward(ctx context.Context, addr string, cmd []byte) (message, error) {
	out, err := n.client(addr).call(ctx, dcs.RPCForward, cmd)
	if err != nil || len(out) == 0 {
		return nil, err
	}
	m := responseFor(op(out[0]))
	if m == nil {
		return nil, nil
	}
	if err := m.Unmarshal(out[1:]); err != nil {
		return nil, fmt.Errorf("decode forwarded response: %w", err)
	}
	return m, nil
}

func responseFor(o op) message {
	switch o {
	case opPut:
		return &pb.PutResponse{}
	case opDeleteRange:
		return &pb.DeleteRangeResponse{}
	case opTxn:
		return &pb.TxnResponse{}
	case opLeaseGrant:
		return &pb.LeaseGrantResponse{}
	case opLeaseRevoke:
		return &pb.LeaseRevokeResponse{}
	case opLeaseRefresh:
		return &pb.LeaseKeepAliveResponse{}
	case opAlarm:
		return &pb.AlarmResponse{}
	}
	return nil
}

// linearize makes the next local read linearizable on the leader, in the
// manner of Raft's ReadIndex: note the commit index, confirm leadership
// with a heartbeat round (VerifyLeader), then wait until the state machine
// has applied up to the noted index. A new leader first commits an entry
// of its own term (a barrier), because until then its commit index may lag
// what the previous leader acknowledged. This costs no log write per read.
func (n *node) linearize(ctx context.Context) error {
	term := n.raft.CurrentTerm()
	if n.readyTerm.Load() != term {
		if err := n.raft.Barrier(applyTimeout(ctx)).Error(); err != nil {
			return mapRaftError(err)
		}
		n.readyTerm.Store(term)
	}
	idx := n.raft.CommitIndex()
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return mapRaftError(err)
	}
	for n.raft.AppliedIndex() < idx {
		select {
		case <-ctx.Done():
			return rpctypes.ErrGRPCTimeout
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// Leader reads: a kind byte, then the marshaled request.
const (
	readRange byte = iota + 1
	readLeaseTTL
	readLeases
	readAlarms
)

// localRead answers a read from this member's state machine.
func (n *node) localRead(kind byte, p []byte) ([]byte, error) {
	var resp message
	var err error
	switch kind {
	case readRange:
		req := &pb.RangeRequest{}
		if err := req.Unmarshal(p); err != nil {
			return nil, err
		}
		resp, err = nilSafe(n.fsm.store.Range(req))
	case readLeaseTTL:
		req := &pb.LeaseTimeToLiveRequest{}
		if err := req.Unmarshal(p); err != nil {
			return nil, err
		}
		resp, err = nilSafe(n.fsm.store.LeaseTimeToLive(req))
	case readLeases:
		resp = n.fsm.store.Leases()
	case readAlarms:
		req := &pb.AlarmRequest{}
		if err := req.Unmarshal(p); err != nil {
			return nil, err
		}
		resp = n.fsm.alarmList(req.Alarm)
	default:
		return nil, fmt.Errorf("unknown read kind %d", kind)
	}
	if err != nil || resp == nil {
		return nil, err
	}
	return resp.Marshal()
}

// leaderRead answers a linearizable read: on the leader after linearize,
// on a follower by asking the leader.
func (n *node) leaderRead(ctx context.Context, kind byte, req, resp message) error {
	p, err := req.Marshal()
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	for {
		var out []byte
		if n.isLeader() {
			if err = n.linearize(ctx); err == nil {
				out, err = n.localRead(kind, p)
			}
		} else if addr := n.leaderAddr(); addr != "" {
			out, err = n.client(addr).call(ctx, dcs.RPCRead, append([]byte{kind}, p...))
		} else {
			err = dcs.ErrNotLeader
		}
		if err == nil {
			return resp.Unmarshal(out)
		}
		// A read changes nothing: one whose answer was lost is retried too.
		var de dcs.DialError
		var lost *dcs.LostCallError
		if !errors.Is(err, dcs.ErrNotLeader) && !errors.As(err, &de) && !errors.As(err, &lost) {
			return err
		}
		select {
		case <-ctx.Done():
			return rpctypes.ErrGRPCNoLeader
		case <-n.closed:
			return rpctypes.ErrGRPCStopped
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// randomID returns a random positive int64, used for lease and cluster IDs.
func randomID() int64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		if id := int64(binary.BigEndian.Uint64(b[:]) >> 1); id != 0 {
			return id
		}
	}
}

// slogWriter routes hashicorp's log lines into our logger.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	switch {
	case strings.Contains(line, "[ERROR]"):
		w.l.Error(line)
	case strings.Contains(line, "[WARN]"):
		w.l.Warn(line)
	default:
		w.l.Info(line)
	}
	return len(p), nil
}
