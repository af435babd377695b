package dcs

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"
)

// TLSHandshakeByte is the first byte of every TLS connection (a
// handshake record, RFC 8446 §5.1). No peer protocol byte (ProtoRaft,
// ProtoRPC, ProtoRaftHello) and no HTTP or HTTP/2 preface starts with it,
// so a port switching to TLS tells both kinds of client apart by it.
const TLSHandshakeByte byte = 0x16

// DialPeerFallback is DialPeer for a member that is switching to TLS
// (Config.AcceptPlain): it dials with TLS and, when the handshake fails
// because the other member does not speak TLS yet (it closes a
// connection whose first byte it does not know), dials again in plain
// TCP. Once every member speaks TLS, nobody dials this way any more.
func DialPeerFallback(ctx context.Context, addr string, tc *tls.Config, proto byte, timeout time.Duration) (net.Conn, error) {
	c, err := DialPeer(ctx, addr, tc, proto, timeout)
	if err == nil || tc == nil {
		return c, err
	}
	// Only a failed handshake falls back: not a member that could not be
	// reached at all, nor one too slow to answer.
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" || errors.As(err, &ne) && ne.Timeout() || ctx.Err() != nil {
		return nil, err
	}
	if pc, perr := DialPeer(ctx, addr, nil, proto, timeout); perr == nil {
		return pc, nil
	}
	return nil, err
}

// NewSwitchingPeerClient is NewPeerClient for a member switching to TLS:
// its connections fall back to plain TCP (DialPeerFallback).
func NewSwitchingPeerClient(addr string, tc *tls.Config) *PeerClient {
	pc := NewPeerClient(addr, tc)
	pc.fallback = true
	return pc
}
