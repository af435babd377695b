package dcs

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrQuorumReachable refuses a recovery while the cluster can still decide.
var ErrQuorumReachable = errors.New("a quorum is reachable; nothing to recover")

// RecoveryReport is what a surviving member knows when the others are
// gone: what was lost cannot be known, only what it holds and when it last
// heard from a leader.
type RecoveryReport struct {
	Survivor MemberInfo     `json:"survivor"`
	Members  []MemberStatus `json:"members"` // the old configuration, as the survivor holds it
	Dead     []string       `json:"dead"`
	// ClusterID is the new cluster's ID once recovered.
	ClusterID string `json:"cluster_id,omitempty"`
}

// PlanRecovery checks that member name, set up here, may be recovered
// alone with the members dead declared gone for good: it must run and
// have no leader; the voters that answer must not be a quorum of its
// configuration; every other member must be named in dead and must not
// answer (a live one would be left behind), and every name in dead must be
// a member. It changes nothing.
func (l *Local) PlanRecovery(ctx context.Context, name string, dead []string) (RecoveryReport, error) {
	rep := RecoveryReport{Dead: dead}
	ac, _, err := l.Admin(name)
	if err != nil {
		return rep, err
	}
	defer ac.Close()
	if rep.Survivor, err = ac.Status(ctx); err != nil {
		return rep, fmt.Errorf("member %s does not answer (start it first: it holds the data to recover): %w", name, err)
	}
	if rep.Members, err = ac.Members(ctx); err != nil {
		return rep, err
	}
	voters, answer := 0, 0
	known := map[string]MemberStatus{}
	for _, m := range rep.Members {
		known[m.Name] = m
		if m.Suffrage == "voter" {
			voters++
			if m.RaftState != "unknown" {
				answer++
			}
		}
	}
	if rep.Survivor.Leader != "" || 2*answer > voters {
		return rep, fmt.Errorf("%d of %d voters answer and member %s follows leader %q: %w", answer, voters, name, rep.Survivor.Leader, ErrQuorumReachable)
	}
	for _, d := range dead {
		m, ok := known[d]
		switch {
		case d == name:
			return rep, fmt.Errorf("--dead names %s, the member to recover", d)
		case !ok:
			return rep, fmt.Errorf("--dead names %s, which is not a member of %s's cluster (members: %s)", d, name, memberNames(rep.Members))
		case m.RaftState != "unknown":
			return rep, fmt.Errorf("member %s answers at %s: it is not dead; recovering without it would leave it behind", d, m.PeerURL)
		}
	}
	for _, m := range rep.Members {
		if m.Name != name && !slices.Contains(dead, m.Name) {
			return rep, fmt.Errorf("member %s is not named in --dead: name every other member (%s) once you know they are gone for good", m.Name, memberNames(rep.Members))
		}
	}
	return rep, nil
}

func memberNames(ms []MemberStatus) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return strings.Join(out, ",")
}

// Recover restarts member name, set up here, as the only member of a new
// cluster with its data (see PlanRecovery, which must pass first): it
// stops the member, has it rewrite its data directory at start under a
// new cluster ID (force_new_cluster), waits until it leads, and records
// the new ID in its configuration. The dead members can never rejoin or
// vote with it: their Raft connections announce the old cluster ID.
func (l *Local) Recover(ctx context.Context, name string) (MemberInfo, error) {
	cfg, err := l.Load(name)
	if err != nil {
		return MemberInfo{}, err
	}
	var b [8]byte
	rand.Read(b[:])
	id := FormatClusterID(binary.BigEndian.Uint64(b[:]) | 1)
	if _, err := l.Stop(ctx, name); err != nil {
		return MemberInfo{}, err
	}
	old := cfg
	// The old cluster_id goes: the member's data is about to be another
	// cluster's, and a member stops when its state and its configuration
	// disagree.
	cfg.ClusterID, cfg.ForceNewCluster = "", id
	if err := l.rewriteConfig(cfg); err != nil {
		return MemberInfo{}, err
	}
	if _, err := l.Start(ctx, name); err != nil {
		if cerr := l.rewriteConfig(old); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return MemberInfo{}, fmt.Errorf("member %s did not come back alone: %w", name, err)
	}
	cfg.ClusterID, cfg.ForceNewCluster = id, ""
	if err := l.rewriteConfig(cfg); err != nil {
		return MemberInfo{}, fmt.Errorf("member %s leads the new cluster %s, but its configuration could not record it: %w", name, id, err)
	}
	ac, _, err := l.Admin(name)
	if err != nil {
		return MemberInfo{}, err
	}
	defer ac.Close()
	return ac.Status(ctx)
}

// rewriteConfig writes a member's configuration as Load returned it.
func (l *Local) rewriteConfig(cfg Config) error {
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	return l.writeConfig(l.ConfigFile(cfg.Name), raw)
}
