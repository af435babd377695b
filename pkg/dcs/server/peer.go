package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// peerListener accepts peer connections and sorts them by their first
// byte (dcs.ProtoRaft or dcs.ProtoRPC).
type peerListener struct {
	ln     net.Listener
	tls    *tls.Config // server side; nil for plain TCP
	dialTL *tls.Config // client side for Dial
	raftCh chan net.Conn
	rpc    func(net.Conn)
	// hello says how to open a Raft connection (proto byte and our
	// cluster ID); foreign tells whether a dialer's cluster ID is another
	// cluster's (version.go).
	hello   func() (byte, uint64)
	foreign func(uint64) bool
	// admitRaft decides, on a TLS port, whether the certificate's holder
	// may speak Raft to this member.
	admitRaft func(dcs.Identity) error
	// acceptPlain serves plain TCP beside TLS and dials with a fallback to
	// plain TCP, while the cluster switches to TLS (sniff.go).
	acceptPlain bool
	log         *slog.Logger
	done        chan struct{}
	once        sync.Once
}

func newPeerListener(ln net.Listener, serverTLS, clientTLS *tls.Config, log *slog.Logger) *peerListener {
	if serverTLS != nil && serverTLS.ClientAuth == tls.RequireAndVerifyClientCert {
		// A newcomer with a join token has no certificate yet: the
		// handshake admits it, a certificate it presents is verified,
		// and admitRaft/admitRPC let a connection without one make the
		// token call only.
		serverTLS = serverTLS.Clone()
		serverTLS.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return &peerListener{ln: ln, tls: serverTLS, dialTL: clientTLS, raftCh: make(chan net.Conn, 16), log: log, done: make(chan struct{})}
}

func (p *peerListener) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			p.log.Warn("peer listener stopped", "err", err)
			return
		}
		go p.sort(c)
	}
}

func (p *peerListener) sort(c net.Conn) {
	switch {
	case p.tls != nil && p.acceptPlain:
		sc, err := sniffTLS(c, p.tls)
		if err != nil {
			c.Close()
			return
		}
		c = sc
	case p.tls != nil:
		c = tls.Server(c, p.tls)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	switch b[0] {
	case dcs.ProtoRaft, dcs.ProtoRaftHello:
		if id, ok := connIdentity(c); ok {
			if err := p.admitRaft(id); err != nil {
				p.log.Warn("raft connection refused", "from", c.RemoteAddr().String(), "err", err)
				c.Close()
				return
			}
		}
		if b[0] == dcs.ProtoRaftHello && !p.sameCluster(c) {
			c.Close()
			return
		}
		select {
		case p.raftCh <- c:
		case <-p.done:
			c.Close()
		}
	case dcs.ProtoRPC:
		p.rpc(c)
	default:
		c.Close()
	}
}

// sameCluster reads a Raft dialer's cluster ID and checks it is ours.
func (p *peerListener) sameCluster(c net.Conn) bool {
	var id [8]byte
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, id[:]); err != nil {
		return false
	}
	c.SetReadDeadline(time.Time{})
	if peer := binary.BigEndian.Uint64(id[:]); p.foreign(peer) {
		p.log.Warn("refused a raft connection from another cluster", "remote", c.RemoteAddr().String(), "cluster_id", fmt.Sprintf("%016x", peer))
		return false
	}
	return true
}

// Accept, Close and Addr make peerListener the net.Listener half of
// raft.StreamLayer: it yields only the Raft connections.
func (p *peerListener) Accept() (net.Conn, error) {
	select {
	case c := <-p.raftCh:
		return c, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}

func (p *peerListener) Close() error {
	p.once.Do(func() { close(p.done) })
	return p.ln.Close()
}

func (p *peerListener) Addr() net.Addr { return p.ln.Addr() }

// Dial is the other half of raft.StreamLayer.
func (p *peerListener) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	proto, id := p.hello()
	dial := dcs.DialPeer
	if p.acceptPlain {
		dial = dcs.DialPeerFallback
	}
	c, err := dial(context.Background(), string(addr), p.dialTL, proto, timeout)
	if err != nil || proto != dcs.ProtoRaftHello {
		return c, err
	}
	if _, err := c.Write(binary.BigEndian.AppendUint64(nil, id)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// rpcHandler answers one call.
type rpcHandler func(ctx context.Context, m dcs.RPCMethod, p []byte) ([]byte, error)

// peerIdleTimeout closes an RPC connection that carries no request for
// that long (dcs.PeerIdleTimeout; tests shorten it).
var peerIdleTimeout = dcs.PeerIdleTimeout

// serveRPCConn answers the calls of one connection, one at a time. A
// frame over dcs.MaxRequestFrame, an idle connection and a caller that
// does not read its answer within the idle timeout end the connection.
func serveRPCConn(ctx context.Context, c net.Conn, h rpcHandler, log *slog.Logger) {
	defer c.Close()
	if id, ok := connIdentity(c); ok {
		ctx = context.WithValue(ctx, identityKey{}, id)
	}
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	for {
		c.SetReadDeadline(time.Now().Add(peerIdleTimeout))
		m, p, err := dcs.ReadFrame(r, dcs.MaxRequestFrame)
		if err != nil {
			return
		}
		var out []byte
		err = safely(log, "peer rpc", func() (err error) {
			out, err = h(ctx, dcs.RPCMethod(m), p)
			return err
		})
		kind, payload := dcs.EncodeError(peerError(err))
		if err == nil {
			payload = out
		}
		c.SetWriteDeadline(time.Now().Add(peerIdleTimeout))
		if dcs.WriteFrame(w, kind, payload) != nil {
			return
		}
	}
}

// peerClient is the member's side of dcs.PeerClient: errors that carry a
// gRPC code become gRPC statuses again, for the etcd clients they go back to.
type peerClient struct{ pc *dcs.PeerClient }

func newPeerClient(addr string, tc *tls.Config) *peerClient {
	return &peerClient{pc: dcs.NewPeerClient(addr, tc)}
}

// peerClient returns a client of the member at addr as this member dials
// its peers: falling back to plain TCP while the cluster switches to TLS.
func (n *node) peerClient(addr string) *peerClient {
	if n.cfg.AcceptPlain {
		return &peerClient{pc: dcs.NewSwitchingPeerClient(addr, n.ptls)}
	}
	return newPeerClient(addr, n.ptls)
}

func (c *peerClient) call(ctx context.Context, m dcs.RPCMethod, p []byte) ([]byte, error) {
	out, err := c.pc.Call(ctx, m, p)
	var se *dcs.StatusError
	if errors.As(err, &se) {
		return out, status.Error(codes.Code(se.Code), se.Message)
	}
	return out, err
}

func (c *peerClient) close() { c.pc.Close() }

// peerError is the inverse for the answers this member sends: a gRPC
// status becomes a *dcs.StatusError.
func peerError(err error) error {
	if s, ok := status.FromError(err); ok && err != nil {
		return &dcs.StatusError{Code: uint32(s.Code()), Message: s.Message()}
	}
	return err
}
