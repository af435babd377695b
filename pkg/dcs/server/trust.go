package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/hashicorp/raft"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// Who may do what on the peer port. With peer TLS (the default), the
// handshake proves a certificate signed by the cluster's peer CA; its
// subject names the holder (CN) and its role (OU: data, witness or
// admin). hashicorp/raft's transport checks nothing of its own (it trusts
// whoever its stream layer hands it), so the checks live here, where the
// connection enters:
//
//   - Raft's transport (R): a member of the Raft configuration, or any
//     member certificate while this member has no configuration yet (a
//     newcomer waiting for the leader's first contact).
//   - TokenSign: anyone, even without a certificate (the peer port asks
//     for one but admits a connection without, for this call only): the
//     token decides (dcs/token.go).
//   - Info: any certificate of the peer CA (a newcomer polls itself).
//   - Members: any member certificate (a newcomer checks before it starts).
//   - Forward, Read: a current member or the administrator.
//   - Join: the newcomer itself (certificate name and role equal the
//     member it asks to add), the administrator, or a data member
//     forwarding a join it has checked the same way. A witness forwards
//     only its own: adding or refreshing another member is data-only
//     work.
//   - Remove: the member itself (leaving), the administrator, or a data
//     member forwarding. Removing another member needs the administrator's
//     credential, which only data members' hosts hold.
//
// Plain TCP (patroni.dcs.embedded.tls: false) checks nothing: it is
// refused with profile production and warned about at every start.

type identityKey struct{}

// peerIdentity returns the verified identity of the caller of an RPC, and
// false on a plain TCP peer port.
func peerIdentity(ctx context.Context) (dcs.Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(dcs.Identity)
	return id, ok
}

// connIdentity reads the identity a TLS connection's verified peer
// certificate carries (the handshake is over once the first byte was
// read).
func connIdentity(c net.Conn) (dcs.Identity, bool) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return dcs.Identity{}, false
	}
	st := tc.ConnectionState()
	if len(st.PeerCertificates) == 0 {
		return dcs.Identity{}, true // verified TLS demands one; never trust its absence
	}
	return dcs.IdentityOf(st.PeerCertificates[0]), true
}

// admitRaft decides whether a Raft transport connection is served.
func (n *node) admitRaft(id dcs.Identity) error {
	if id.Role != dcs.RoleData && id.Role != dcs.RoleWitness {
		return fmt.Errorf("%q (%s) is not a member certificate", id.Name, id.Role)
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return err
	}
	servers := cf.Configuration().Servers
	if len(servers) == 0 {
		return nil
	}
	for _, s := range servers {
		if string(s.ID) == id.Name {
			return nil
		}
	}
	return fmt.Errorf("%q is not a member of this cluster", id.Name)
}

// admitRPC decides whether the caller may make call m; mem is the member
// a join or remove names.
func (n *node) admitRPC(ctx context.Context, m dcs.RPCMethod, mem dcs.Member) error {
	id, secured := peerIdentity(ctx)
	switch {
	case !secured || m == dcs.RPCTokenSign:
		return nil
	case id.Role == "":
		return errors.New("permission denied: this member speaks to peers with a certificate of its cluster only (a newcomer brings a join token: `pgherd dcs token create`)")
	case m == dcs.RPCInfo || id.Role == dcs.CertAdmin:
		return nil
	}
	if id.Role != dcs.RoleData && id.Role != dcs.RoleWitness {
		return fmt.Errorf("permission denied: %q (%s) is not a member certificate", id.Name, id.Role)
	}
	switch m {
	case dcs.RPCJoin:
		if id.Name == mem.Name && id.Role == mem.Role {
			return nil
		}
		if id.Name == mem.Name {
			return fmt.Errorf("permission denied: the certificate of %s says role %s, not %s", id.Name, id.Role, mem.Role)
		}
	case dcs.RPCRemove:
		if id.Name == mem.Name {
			return nil
		}
	case dcs.RPCTokenDone, dcs.RPCMembers:
		// The token's binding to the name is checked by the store; the
		// member list is for any holder of a member certificate (a
		// newcomer checks its name and zone before it starts).
		return nil
	}
	if !n.isMember(id.Name) {
		return fmt.Errorf("permission denied: %q is not a member of this cluster", id.Name)
	}
	if (m == dcs.RPCJoin || m == dcs.RPCRemove) && id.Role != dcs.RoleData {
		return fmt.Errorf("permission denied: witness %s may add or remove only itself; membership of others is data-only work (removing another member needs the administrator's credential)", id.Name)
	}
	return nil
}

// isMember reports whether name is in the Raft configuration.
func (n *node) isMember(name string) bool {
	if _, ok := n.fsm.member(name); ok {
		return true
	}
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return false
	}
	for _, s := range cf.Configuration().Servers {
		if s.ID == raft.ServerID(name) {
			return true
		}
	}
	return false
}
