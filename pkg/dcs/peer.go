package dcs

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// The peer port carries two protocols on one listener. The first byte a
// dialer writes selects one: Raft's own transport, or our cluster RPCs
// (forwarded writes and reads, join, remove, member info). With TLS the
// byte comes after the handshake, so both are encrypted alike. The client
// side lives here, so that the CLI reaches members without linking the
// server (pkg/dcs/server), which serves the other side.
const (
	ProtoRaft byte = 'R'
	ProtoRPC  byte = 'C'
	// ProtoRaftHello selects Raft's transport like ProtoRaft, followed by
	// the dialer's cluster ID (8 bytes, big-endian, 0 while unknown): a
	// member refuses Raft connections from another cluster. Members dial
	// with it once the cluster version allows (older members know only
	// ProtoRaft).
	ProtoRaftHello byte = 'r'
)

// DialPeer connects to the peer port at addr and selects proto on it.
func DialPeer(ctx context.Context, addr string, tc *tls.Config, proto byte, timeout time.Duration) (net.Conn, error) {
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

// RPCMethod is the first byte of a request frame. RPC framing: request =
// method byte, uint32 length, payload; response = status byte, uint32
// length, payload. A connection carries one call at a time and is reused.
type RPCMethod byte

// The cluster RPCs a member answers on its peer port.
const (
	RPCForward   RPCMethod = iota + 1 // a command for the leader to apply
	RPCRead                           // a linearizable read for the leader
	RPCJoin                           // JSON Member: add or update a member (leader)
	RPCRemove                         // JSON Member: remove by name (leader)
	RPCInfo                           // this member's raft view
	RPCMembers                        // the whole membership with each member's view
	RPCTokenSign                      // JSON TokenSignRequest: sign a newcomer's certificates (no certificate needed)
	RPCTokenDone                      // JSON Token ID: the caller, now a member, used its token
)

const (
	stOK byte = iota
	stNotLeader
	stGRPC  // payload: uint32 code + message
	stOther // payload: message
)

// Bounds of the peer port. A request frame carries one command (at most
// etcd's 1.5 MiB request and its op byte) or one read; a member refuses a
// larger one by closing the connection before reading it. Responses come
// from a member this one chose to call and may be larger (a range of
// many keys).
const (
	MaxRequestFrame  = 2 << 20
	MaxResponseFrame = 64 << 20
	// PeerIdleTimeout is how long a member keeps an RPC connection on its
	// peer port open without a request. A client reuses a pooled
	// connection only when it has been idle for less than half of it.
	PeerIdleTimeout = 2 * time.Minute
)

// WriteFrame writes one request or response frame and flushes it.
func WriteFrame(w *bufio.Writer, kind byte, p []byte) error {
	w.WriteByte(kind)
	w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(p))))
	w.Write(p)
	return w.Flush()
}

// ReadFrame reads one frame, refusing one larger than limit bytes
// without reading its payload.
func ReadFrame(r *bufio.Reader, limit uint32) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > limit {
		return 0, nil, fmt.Errorf("peer frame of %d bytes is too large", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return h[0], p, nil
}

// ErrNotLeader is returned by operations that only the Raft leader can do
// when this member is not the leader; callers forward to the leader.
var ErrNotLeader = errors.New("dcs: this member is not the raft leader")

// StatusError is an error that carries a gRPC status code over the peer
// port (an etcd API error raised on another member). It holds the code as
// a number so that this package needs no gRPC; the server turns it back
// into a gRPC status for its etcd clients.
type StatusError struct {
	Code    uint32
	Message string
}

func (e *StatusError) Error() string { return e.Message }

// EncodeError maps a call's outcome to a response frame's status byte and
// payload (the payload is for errors only).
func EncodeError(err error) (byte, []byte) {
	var se *StatusError
	switch {
	case err == nil:
		return stOK, nil
	case errors.Is(err, ErrNotLeader):
		return stNotLeader, nil
	case errors.As(err, &se):
		return stGRPC, append(binary.BigEndian.AppendUint32(nil, se.Code), se.Message...)
	}
	return stOther, []byte(err.Error())
}

func decodeError(kind byte, p []byte) error {
	switch kind {
	case stOK:
		return nil
	case stNotLeader:
		return ErrNotLeader
	case stGRPC:
		if len(p) >= 4 {
			return &StatusError{Code: binary.BigEndian.Uint32(p), Message: string(p[4:])}
		}
	}
	return errors.New(string(p))
}

// PeerClient keeps a few idle RPC connections to one member.
type PeerClient struct {
	addr string
	tls  *tls.Config
	idle chan *rpcConn
	// fallback dials plain TCP when the TLS handshake fails (a member
	// switching to TLS: NewSwitchingPeerClient).
	fallback bool
}

type rpcConn struct {
	c    net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	used time.Time // end of its last call
}

// reusable tells whether a pooled connection may carry another call: idle
// for less than half the member's idle timeout, and not closed by the
// member meanwhile.
// Without it a call on a connection the member had closed would be lost
// after sending, whose outcome the caller cannot know.
func (rc *rpcConn) reusable() bool {
	return time.Since(rc.used) < PeerIdleTimeout/2 && rc.r.Buffered() == 0 && !connClosed(rc.c)
}

// DialError marks a call that never reached the peer, which is always safe
// to retry elsewhere.
type DialError struct{ Err error }

func (e DialError) Error() string { return e.Err.Error() }
func (e DialError) Unwrap() error { return e.Err }

// LostCallError marks a call sent to the peer whose answer never came (the
// connection was cut, or the deadline passed): it may or may not have been
// carried out. The member maps it to etcd's "leader changed" or, for a
// timeout, "request timed out"; a read may simply be retried.
type LostCallError struct{ Err error }

func (e *LostCallError) Error() string { return e.Err.Error() }
func (e *LostCallError) Unwrap() error { return e.Err }

// Timeout reports whether the call ran out of time rather than losing its
// connection.
func (e *LostCallError) Timeout() bool {
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// NewPeerClient returns a client for the peer port at addr; tc is the
// client side of peer TLS, nil for plain TCP.
func NewPeerClient(addr string, tc *tls.Config) *PeerClient {
	return &PeerClient{addr: addr, tls: tc, idle: make(chan *rpcConn, 32)}
}

// Call sends one RPC and returns its answer. An error raised by the
// member comes back as ErrNotLeader, a *StatusError, or plain text; one
// that never reached it is a DialError; one sent without an answer is a
// *LostCallError.
func (pc *PeerClient) Call(ctx context.Context, m RPCMethod, p []byte) ([]byte, error) {
	rc := pc.pooled()
	if rc == nil {
		dial := DialPeer
		if pc.fallback {
			dial = DialPeerFallback
		}
		c, err := dial(ctx, pc.addr, pc.tls, ProtoRPC, 3*time.Second)
		if err != nil {
			return nil, DialError{fmt.Errorf("reach member at %s: %w", pc.addr, err)}
		}
		rc = &rpcConn{c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(30 * time.Second)
	}
	rc.c.SetDeadline(dl)
	if err := WriteFrame(rc.w, byte(m), p); err != nil {
		rc.c.Close()
		// A pooled connection may have been closed by the peer while idle;
		// nothing was delivered, so retrying is safe.
		return nil, DialError{fmt.Errorf("call member at %s: %w", pc.addr, err)}
	}
	kind, out, err := ReadFrame(rc.r, MaxResponseFrame)
	if err != nil {
		rc.c.Close()
		return nil, &LostCallError{fmt.Errorf("call member at %s: %w", pc.addr, err)}
	}
	rc.used = time.Now()
	select {
	case pc.idle <- rc:
	default:
		rc.c.Close()
	}
	return out, decodeError(kind, out)
}

// pooled returns an idle connection fit for another call, closing those
// that are not; nil when there is none.
func (pc *PeerClient) pooled() *rpcConn {
	for {
		select {
		case rc := <-pc.idle:
			if rc.reusable() {
				return rc
			}
			rc.c.Close()
		default:
			return nil
		}
	}
}

// Close releases the idle connections.
func (pc *PeerClient) Close() {
	for {
		select {
		case rc := <-pc.idle:
			rc.c.Close()
		default:
			return
		}
	}
}
