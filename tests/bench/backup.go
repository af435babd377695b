package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

func init() {
	benches = append(benches,
		bench{name: "instance backup --type full vs pgbackrest backup", goal: "≤ 1.10", run: benchBackup},
		bench{name: "instance backups -o json vs pgbackrest info --output=json", goal: "≤ 1.5", run: benchBackups},
	)
}

// backupSite creates a running instance with pgBackRest on and returns
// its environment and the pgbackrest command line for its stanza.
func (h *harness) backupSite(ctx context.Context, name string, port int) ([]string, []string, error) {
	dir := filepath.Join(h.work, name)
	env, err := h.siteEnv(dir, port)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "site.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, nil, err
	}
	_, err = f.WriteString("pgbackrest: {}\n")
	f.Close()
	if err != nil {
		return nil, nil, err
	}
	if _, err := h.timeCmd(ctx, env, false, h.pgherd, "-q", "instance", "create", "pg1", "--port", strconv.Itoa(port)); err != nil {
		return nil, nil, err
	}
	by := []string{"/usr/bin/pgbackrest", "--config=" + filepath.Join(dir, "prefix", "etc", "pgbackrest", "15-pg1.conf"), "--stanza=15-pg1"}
	return env, by, nil
}

// benchBackup alternates full backups by pgherd and by pgBackRest run by
// hand (as the PostgreSQL account, with pgherd's file) on one instance.
func benchBackup(ctx context.Context, h *harness) (result, error) {
	env, by, err := h.backupSite(ctx, "backup", 55402)
	if err != nil {
		return result{}, err
	}
	defer h.timeCmd(ctx, env, false, h.pgherd, "-q", "instance", "drop", "pg1", "--yes")
	var mine, ref []time.Duration
	for n := 0; n < h.runs; n++ {
		d, err := h.timeCmd(ctx, env, false, h.pgherd, "-q", "instance", "backup", "pg1", "--type", "full")
		if err != nil {
			return result{}, err
		}
		mine = append(mine, d)
		d, err = h.timeCmd(ctx, nil, true, append(by, "--type=full", "backup")...)
		if err != nil {
			return result{}, err
		}
		ref = append(ref, d)
	}
	return result{pgherd: median(mine), reference: median(ref), runs: h.runs, note: "empty instance, local repository, start-fast"}, nil
}

// benchBackups lists the same stanza (two backups) both ways.
func benchBackups(ctx context.Context, h *harness) (result, error) {
	env, by, err := h.backupSite(ctx, "backups", 55403)
	if err != nil {
		return result{}, err
	}
	defer h.timeCmd(ctx, env, false, h.pgherd, "-q", "instance", "drop", "pg1", "--yes")
	for _, typ := range []string{"full", "incr"} {
		if _, err := h.timeCmd(ctx, env, false, h.pgherd, "-q", "instance", "backup", "pg1", "--type", typ); err != nil {
			return result{}, err
		}
	}
	runs := h.runs * 4
	var mine, ref []time.Duration
	for n := 0; n < runs; n++ {
		d, err := h.timeCmd(ctx, env, false, h.pgherd, "instance", "backups", "pg1", "-o", "json")
		if err != nil {
			return result{}, err
		}
		mine = append(mine, d)
		d, err = h.timeCmd(ctx, nil, true, append(by, "--output=json", "info")...)
		if err != nil {
			return result{}, err
		}
		ref = append(ref, d)
	}
	return result{pgherd: median(mine), reference: median(ref), runs: runs, note: "two backups"}, nil
}
