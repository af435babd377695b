package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"
)

func init() {
	benches = append(benches,
		bench{name: "instance create vs initdb + pg_ctl -w start", goal: "≤ 1.10", run: benchCreate},
		bench{name: "instance get -o json vs psql -Atc 'select 1'", goal: "≤ 1.5", run: benchGet},
	)
}

const bindir = "/usr/lib/postgresql/15/bin"

// benchCreate creates an instance with pgherd and, with the same initdb
// options, by hand; each run is stopped and removed before the next.
func benchCreate(ctx context.Context, h *harness) (result, error) {
	port := 55400
	var mine, ref []time.Duration
	for n := 0; n < h.runs; n++ {
		dir := filepath.Join(h.work, fmt.Sprintf("create-%d", n))
		env, err := h.siteEnv(dir, port)
		if err != nil {
			return result{}, err
		}
		d, err := h.timeCmd(ctx, env, false, h.pgherd, "-q", "instance", "create", "pg1", "--port", strconv.Itoa(port))
		if err != nil {
			return result{}, err
		}
		mine = append(mine, d)
		if _, err := h.timeCmd(ctx, env, false, h.pgherd, "-q", "instance", "drop", "pg1", "--yes"); err != nil {
			return result{}, err
		}

		bare := filepath.Join(dir, "bare")
		if err := h.mkdirOwned(bare); err != nil {
			return result{}, err
		}
		data, wal := filepath.Join(bare, "data"), filepath.Join(bare, "wal")
		start := time.Now()
		if _, err := h.timeCmd(ctx, nil, true, filepath.Join(bindir, "initdb"), "--pgdata", data, "--waldir", wal,
			"--username", "postgres", "--locale", "C.UTF-8", "--encoding", "UTF8", "--auth-local", "trust", "--auth-host", "trust", "--data-checksums"); err != nil {
			return result{}, err
		}
		if _, err := h.timeCmd(ctx, nil, true, filepath.Join(bindir, "pg_ctl"), "-w", "-D", data, "-l", filepath.Join(bare, "log"),
			"-o", fmt.Sprintf("-p %d -k %s", port, bare), "start"); err != nil {
			return result{}, err
		}
		ref = append(ref, time.Since(start))
		if _, err := h.timeCmd(ctx, nil, true, filepath.Join(bindir, "pg_ctl"), "-w", "-D", data, "-m", "fast", "stop"); err != nil {
			return result{}, err
		}
	}
	return result{pgherd: median(mine), reference: median(ref), runs: h.runs, note: "initdb with data checksums, fsync on"}, nil
}

// benchGet compares describing a running instance with the cheapest query
// psql can make against it.
func benchGet(ctx context.Context, h *harness) (result, error) {
	port := 55401
	dir := filepath.Join(h.work, "get")
	env, err := h.siteEnv(dir, port)
	if err != nil {
		return result{}, err
	}
	if _, err := h.timeCmd(ctx, env, false, h.pgherd, "-q", "instance", "create", "pg1", "--port", strconv.Itoa(port)); err != nil {
		return result{}, err
	}
	defer h.timeCmd(ctx, env, false, h.pgherd, "-q", "instance", "drop", "pg1", "--yes")
	runs := h.runs * 4
	var mine, ref []time.Duration
	for n := 0; n < runs; n++ {
		d, err := h.timeCmd(ctx, env, false, h.pgherd, "instance", "get", "pg1", "-o", "json")
		if err != nil {
			return result{}, err
		}
		mine = append(mine, d)
		d, err = h.timeCmd(ctx, nil, false, filepath.Join(bindir, "psql"), "-h", filepath.Join(dir, "run", "postgresql"),
			"-p", strconv.Itoa(port), "-U", "postgres", "-d", "postgres", "-Atc", "select 1")
		if err != nil {
			return result{}, err
		}
		ref = append(ref, d)
	}
	return result{pgherd: median(mine), reference: median(ref), runs: runs, note: "running instance, Unix socket"}, nil
}
