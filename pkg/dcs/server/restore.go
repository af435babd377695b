package server

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/dcs/mvcc"
)

// readSnapshotFile checks a snapshot file (the digest at its end) and
// reads its store through.
func readSnapshotFile(path string) (mvcc.Snapshot, error) {
	if err := dcs.CheckSnapshotFile(path); err != nil {
		return nil, err
	}
	snap, err := mvcc.ReadBackend(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s cannot be read (%v): %w", path, err, dcs.ErrBadSnapshot)
	}
	return snap, nil
}

// checkSnapshotMain is `pgherd-dcs --check-snapshot FILE`: exit 0 when
// FILE is a complete snapshot this member could start from, else 1 with
// the reason on one line.
func checkSnapshotMain(path string, stderr io.Writer) int {
	if _, err := readSnapshotFile(path); err != nil {
		fmt.Fprintf(stderr, "Error: %s\n", err)
		return 1
	}
	return 0
}

// seedFromSnapshot, for a new member whose configuration names a
// snapshot (restore_from), writes the snapshot's state as the data
// directory's first Raft snapshot, with a configuration of this member
// alone, so that Raft starts from it instead of bootstrapping an empty
// cluster. The state carries no cluster ID and no member table: the
// member, leader of its own cluster, draws a new ID and publishes itself,
// so nothing of the old cluster's identity survives.
func seedFromSnapshot(cfg dcs.Config) error {
	snap, err := readSnapshotFile(cfg.RestoreFrom)
	if err != nil {
		return err
	}
	meta, err := json.Marshal(snapshotMeta{Members: []dcs.Member{}})
	if err != nil {
		return err
	}
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hl)
	if err != nil {
		return fmt.Errorf("open snapshots: %w", err)
	}
	_, trans := raft.NewInmemTransport("") // only encodes the legacy peer list
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(cfg.Name), Address: raft.ServerAddress(cfg.AdvertisePeer)}}}
	sink, err := snaps.Create(raft.SnapshotVersionMax, 1, 1, conf, 1, trans)
	if err != nil {
		return fmt.Errorf("create the first snapshot: %w", err)
	}
	return (&fsmSnapshot{version: versionBase, meta: meta, store: snap}).Persist(sink)
}
