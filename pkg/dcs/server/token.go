package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/names"
)

// signForToken answers a newcomer that brings a join token (dcs/token.go):
// it checks and reserves the token in this host's store, then signs the
// newcomer's certificate requests with the member's name and the token's
// role. A data token also hands over the CA keys, so that the new data
// member's host can issue certificates (its Patroni's, the
// administrator's) as the first one's does.
func (n *node) signForToken(ctx context.Context, p []byte) ([]byte, error) {
	if n.cfg.CADir == "" {
		return nil, errors.New("join token refused: this member holds no CA; join through the data member whose host printed the token")
	}
	var req dcs.TokenSignRequest
	if err := json.Unmarshal(p, &req); err != nil {
		return nil, fmt.Errorf("token request: %w", err)
	}
	if err := names.Check("member", req.Name); err != nil {
		return nil, fmt.Errorf("token request: %w", err)
	}
	if n.isMember(req.Name) && !n.switchingToTLS(req.Name, req.Role) {
		return nil, fmt.Errorf("a member named %q already exists: choose another name, or remove it first with `pgherd dcs leave %s`", req.Name, req.Name)
	}
	if err := (dcs.TokenStore{Dir: n.cfg.CADir}).Reserve(req.ID, req.Secret, req.Name, req.Role); err != nil {
		return nil, err
	}
	pki := dcs.PKI{Dir: n.cfg.CADir}
	pca, err := pki.Load(true)
	if err != nil {
		return nil, err
	}
	cca, err := pki.Load(false)
	if err != nil {
		return nil, err
	}
	resp := dcs.TokenSignResponse{PeerCA: pca.PEM(), ClientCA: cca.PEM()}
	if resp.PeerCert, err = pca.SignCSR(req.PeerCSR, dcs.Leaf{Name: req.Name, Role: req.Role, Hosts: req.PeerHosts}); err != nil {
		return nil, err
	}
	if resp.ClientCert, err = cca.SignCSR(req.ClientCSR, dcs.Leaf{Name: req.Name, Role: req.Role, Hosts: req.ClientHosts}); err != nil {
		return nil, err
	}
	if req.Role == dcs.RoleData {
		resp.PeerCAKey, resp.ClientCAKey = pca.KeyPEM(), cca.KeyPEM()
		if resp.Credentials, err = dcs.ReadCredentials(n.cfg.Credentials); err != nil {
			return nil, fmt.Errorf("read the Patroni credentials for the newcomer: %w", err)
		}
	}
	n.log.Info("signed the certificates of a newcomer with a join token", "name", req.Name, "role", req.Role)
	return json.Marshal(resp)
}

// switchingToTLS reports whether member name of role is still on plain
// TCP (its published peer URL is http): `pgherd dcs tls enable --token` on
// its host asks for its first certificates under its own name. A member
// that speaks TLS already never gets another certificate this way: its
// name is bound to the one it has.
func (n *node) switchingToTLS(name, role string) bool {
	m, ok := n.fsm.member(name)
	return ok && m.Role == role && strings.HasPrefix(m.PeerURL, "http://")
}

// tokenDone consumes the token a newcomer, now holding its certificate,
// joined with.
func (n *node) tokenDone(ctx context.Context, p []byte) error {
	id, _ := peerIdentity(ctx)
	var tokenID string
	if err := json.Unmarshal(p, &tokenID); err != nil {
		return fmt.Errorf("token done: %w", err)
	}
	if n.cfg.CADir == "" {
		return errors.New("this member holds no tokens")
	}
	return dcs.TokenStore{Dir: n.cfg.CADir}.Consume(tokenID, id.Name)
}
