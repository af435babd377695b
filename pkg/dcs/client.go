// Package dcs is pgherd's embedded DCS as the CLI sees it: a member's
// configuration, the members set up on this host and their services, and
// a client for the members' peer port. The member itself (Raft and the
// etcd v3 API) is pkg/dcs/server, run by the pgherd-dcs binary; this
// package imports none of it, so that every pgherd command starts fast.
package dcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// AdminClient talks to one member's peer port for the operations etcd's
// API has no room for: the member table with each member's Raft view, a
// member's own status, and removing a member. Requests that need the
// leader are forwarded by the member.
type AdminClient struct {
	pc    *PeerClient
	plain bool // no credential: a member on TLS closes the connection
}

// NewAdminClient returns a client for the member whose peer port is at
// peerAddr (host:port). tls is the member TLS material to present when the
// peer port uses TLS.
func NewAdminClient(peerAddr string, tls TLSConfig) (*AdminClient, error) {
	tc, err := tls.Client()
	if err != nil {
		return nil, err
	}
	return &AdminClient{pc: NewPeerClient(peerAddr, tc), plain: tc == nil}, nil
}

// explain says why a call without a credential lost its connection: the
// member speaks TLS and wants a certificate of its cluster.
func (c *AdminClient) explain(err error) error {
	var lost *LostCallError
	if c.plain && errors.As(err, &lost) && !lost.Timeout() {
		return fmt.Errorf("%w: the member closed a connection without a certificate; its cluster speaks TLS: run this on a host of one of its data members (which holds the administrator's credential), or give --cert, --key and --ca", err)
	}
	return err
}

// Members returns every member of the Raft configuration, sorted as the
// configuration lists them, each with its own view of Raft (or state
// "unknown" and healthy false when it does not answer).
func (c *AdminClient) Members(ctx context.Context) ([]MemberStatus, error) {
	b, err := c.pc.Call(ctx, RPCMembers, nil)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", c.explain(err))
	}
	var out []MemberStatus
	return out, json.Unmarshal(b, &out)
}

// Status returns the contacted member's own view.
func (c *AdminClient) Status(ctx context.Context) (MemberInfo, error) {
	var mi MemberInfo
	b, err := c.pc.Call(ctx, RPCInfo, nil)
	if err != nil {
		return mi, fmt.Errorf("member status: %w", c.explain(err))
	}
	return mi, json.Unmarshal(b, &mi)
}

// Leave removes the member called name from the cluster. Removing a name
// that is not a member does nothing.
func (c *AdminClient) Leave(ctx context.Context, name string) error {
	raw, _ := json.Marshal(Member{Name: name})
	_, err := c.pc.Call(ctx, RPCRemove, raw)
	return c.explain(err)
}

// Close releases the client's connections.
func (c *AdminClient) Close() { c.pc.Close() }
