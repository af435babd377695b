package dcs

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
)

// The peer port carries two protocols on one listener. The first byte a
// dialer writes selects one: Raft's own transport, or our cluster RPCs
// (forwarded writes and reads, join, remove, member info). With TLS the
// byte comes after the handshake, so both are encrypted alike.
const (
	protoRaft byte = 'R'
	protoRPC  byte = 'C'
)

// peerListener accepts peer connections and sorts them by their first byte.
type peerListener struct {
	ln     net.Listener
	tls    *tls.Config // server side; nil for plain TCP
	dialTL *tls.Config // client side for Dial
	raftCh chan net.Conn
	rpc    func(net.Conn)
	log    *slog.Logger
	done   chan struct{}
	once   sync.Once
}

func newPeerListener(ln net.Listener, serverTLS, clientTLS *tls.Config, log *slog.Logger) *peerListener {
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
	if p.tls != nil {
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
	case protoRaft:
		select {
		case p.raftCh <- c:
		case <-p.done:
			c.Close()
		}
	case protoRPC:
		p.rpc(c)
	default:
		c.Close()
	}
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
	return dialPeer(context.Background(), string(addr), p.dialTL, protoRaft, timeout)
}

func dialPeer(ctx context.Context, addr string, tc *tls.Config, proto byte, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		tc = tc.Clone()
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tcc := tls.Client(c, tc)
		tcc.SetDeadline(time.Now().Add(timeout))
		if err := tcc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
		}
		tcc.SetDeadline(time.Time{})
		c = tcc
	}
	if _, err := c.Write([]byte{proto}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// RPC framing: request = method byte, uint32 length, payload; response =
// status byte, uint32 length, payload. A connection carries one call at a
// time and is reused.
type rpcMethod byte

const (
	rpcForward rpcMethod = iota + 1 // a command for the leader to apply
	rpcRead                         // a linearizable read for the leader
	rpcJoin                         // JSON Member: add or update a member (leader)
	rpcRemove                       // JSON Member: remove by name (leader)
	rpcInfo                         // this member's raft view
	rpcMembers                      // the whole membership with each member's view
)

const (
	stOK byte = iota
	stNotLeader
	stGRPC  // payload: uint32 code + message
	stOther // payload: message
)

const maxFrame = 64 << 20

func writeFrame(w *bufio.Writer, kind byte, p []byte) error {
	w.WriteByte(kind)
	w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(p))))
	w.Write(p)
	return w.Flush()
}

func readFrame(r *bufio.Reader) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("peer frame of %d bytes is too large", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return h[0], p, nil
}

// rpcHandler answers one call.
type rpcHandler func(ctx context.Context, m rpcMethod, p []byte) ([]byte, error)

func serveRPCConn(ctx context.Context, c net.Conn, h rpcHandler) {
	defer c.Close()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	for {
		m, p, err := readFrame(r)
		if err != nil {
			return
		}
		out, err := h(ctx, rpcMethod(m), p)
		kind, payload := encodeRPCError(err)
		if err == nil {
			payload = out
		}
		if writeFrame(w, kind, payload) != nil {
			return
		}
	}
}

func encodeRPCError(err error) (byte, []byte) {
	if err == nil {
		return stOK, nil
	}
	if errors.Is(err, ErrNotLeader) {
		return stNotLeader, nil
	}
	if s, ok := status.FromError(err); ok {
		return stGRPC, append(binary.BigEndian.AppendUint32(nil, uint32(s.Code())), s.Message()...)
	}
	return stOther, []byte(err.Error())
}

func decodeRPCError(kind byte, p []byte) error {
	switch kind {
	case stOK:
		return nil
	case stNotLeader:
		return ErrNotLeader
	case stGRPC:
		if len(p) >= 4 {
			return status.Error(codes.Code(binary.BigEndian.Uint32(p)), string(p[4:]))
		}
	}
	return errors.New(string(p))
}

// peerClient keeps a few idle RPC connections to one member.
type peerClient struct {
	addr string
	tls  *tls.Config
	idle chan *rpcConn
}

type rpcConn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

// errDial marks a call that never reached the peer, which is always safe
// to retry elsewhere.
type errDial struct{ err error }

func (e errDial) Error() string { return e.err.Error() }
func (e errDial) Unwrap() error { return e.err }

func newPeerClient(addr string, tc *tls.Config) *peerClient {
	return &peerClient{addr: addr, tls: tc, idle: make(chan *rpcConn, 32)}
}

func (pc *peerClient) call(ctx context.Context, m rpcMethod, p []byte) ([]byte, error) {
	var rc *rpcConn
	select {
	case rc = <-pc.idle:
	default:
		c, err := dialPeer(ctx, pc.addr, pc.tls, protoRPC, 3*time.Second)
		if err != nil {
			return nil, errDial{fmt.Errorf("reach member at %s: %w", pc.addr, err)}
		}
		rc = &rpcConn{c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(30 * time.Second)
	}
	rc.c.SetDeadline(dl)
	if err := writeFrame(rc.w, byte(m), p); err != nil {
		rc.c.Close()
		// A pooled connection may have been closed by the peer while idle;
		// nothing was delivered, so retrying is safe.
		return nil, errDial{fmt.Errorf("call member at %s: %w", pc.addr, err)}
	}
	kind, out, err := readFrame(rc.r)
	if err != nil {
		rc.c.Close()
		return nil, fmt.Errorf("call member at %s: %w", pc.addr, err)
	}
	select {
	case pc.idle <- rc:
	default:
		rc.c.Close()
	}
	return out, decodeRPCError(kind, out)
}

func (pc *peerClient) close() {
	for {
		select {
		case rc := <-pc.idle:
			rc.c.Close()
		default:
			return
		}
	}
}
