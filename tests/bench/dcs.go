package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"time"

	dcsbench "github.com/pgherd/pgherd/pkg/dcs/bench"
)

func init() {
	sections = append(sections, section{name: "Embedded DCS vs etcd 3.4", run: benchDCS})
}

// benchDCS runs the same clientv3 workload against a 3-member pgherd dcs
// (members are 'pgherd dcs serve') and a 3-member etcd 3.4, one after the
// other. Goals: put p50 and p99 ≤ 1.0×, throughput ≥ 1.0×, idle RSS ≤ 0.75×.
func benchDCS(ctx context.Context, h *harness) (string, error) {
	r, err := dcsbench.Run(ctx, dcsbench.Options{
		Dir: filepath.Join(h.work, "dcs"), SeqPuts: 2000, Clients: 16, ParallelPuts: 16000, ValueSize: 256, Idle: 3 * time.Second,
		MemberCommand: func(file string) *exec.Cmd {
			return exec.Command(h.pgherd, "-q", "dcs", "serve", "--config", file)
		},
	})
	if err != nil {
		return "", err
	}
	return "2000 sequential 256-byte puts (p50, p99), then 16000 puts from 16 clients, through etcd's clientv3 on loopback with fsync on; " +
		"RSS is the mean of the members 3 s after start and 3 s after the load. " +
		"Goals: p50 and p99 ≤ 1.0×, throughput ≥ 1.0×, idle RSS ≤ 0.75×.\n\n" + r.Markdown(), nil
}
