package server

import (
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// Quorum recovery (`pgherd dcs recover`): a surviving member, stopped,
// rewrites its own data directory so that it alone is the cluster, under
// a new cluster ID chosen by the operator's command (force_new_cluster in
// its configuration). Raft's RecoverCluster replays everything in the log
// (an entry the survivor holds may or may not have been committed: what
// the lost members held is lost with them) and writes a snapshot whose
// configuration is this member alone. The snapshot's state carries the
// new cluster ID and a member table of this member alone, so that the
// dead members, should they come back, are neither in the configuration
// nor of this cluster: their Raft connections, which announce the old ID,
// are refused (version.go, foreignCluster). Members named dead that are
// in fact alive and a quorum of the old configuration can still elect a
// leader among themselves, as the old cluster: nothing here can stop that,
// which is why the command wants them gone for good and wiped.

// forceNewCluster runs the recovery when the configuration asks for it
// and the data directory is not already in that cluster (a restart of a
// recovered member changes nothing).
func forceNewCluster(cfg dcs.Config) error {
	id, err := strconv.ParseUint(cfg.ForceNewCluster, 16, 64)
	if err != nil || id == 0 {
		return fmt.Errorf("force_new_cluster %q: want 16 hex digits", cfg.ForceNewCluster)
	}
	if dcs.RecordedCluster(cfg.DataDir) == cfg.ForceNewCluster {
		return nil
	}
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn})
	logs, meta, err := openLogStore(filepath.Join(cfg.DataDir, dcs.WALDir), hl)
	if err != nil {
		return err
	}
	defer meta.Close()
	defer logs.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hl)
	if err != nil {
		return fmt.Errorf("open snapshots: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.Name)
	rc.Logger = hl
	rc.NoLegacyTelemetry = true
	_, trans := raft.NewInmemTransport("") // only encodes the legacy peer list
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: raft.ServerAddress(cfg.AdvertisePeer)}}}
	f := &renamedFSM{fsm: newFSM(cfg.HistoryLimit), id: id, self: cfg.Name}
	if err := raft.RecoverCluster(rc, f, logs, logs, snaps, trans, conf); err != nil {
		return fmt.Errorf("recover member %s alone: %w", cfg.Name, err)
	}
	return dcs.WriteIdentity(cfg.DataDir, cfg.Name, cfg.ForceNewCluster)
}

// renamedFSM is the state machine replayed by RecoverCluster; its snapshot
// is of the new cluster: the new ID, and only this member in the table.
type renamedFSM struct {
	*fsm
	id   uint64
	self string
}

func (r *renamedFSM) Snapshot() (raft.FSMSnapshot, error) {
	r.mu.Lock()
	r.clusterID = r.id
	for name := range r.members {
		if name != r.self {
			delete(r.members, name)
		}
	}
	r.mu.Unlock()
	return r.fsm.Snapshot()
}
