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
// (members are 'pgherd dcs serve') and a 3-member etcd 3.4, both up, in
// four alternating rounds that never load both at once: first both on
// plain TCP, then both on TLS with client certificates on every port.
// Goals: put p50 and p99 ≤ 1.0×, throughput ≥ 1.0×, idle RSS ≤ 0.75×.
func benchDCS(ctx context.Context, h *harness) (string, error) {
	var rs [2]*dcsbench.Result
	for i, tls := range []bool{false, true} {
		var err error
		rs[i], err = dcsbench.Run(ctx, dcsbench.Options{
			Dir: filepath.Join(h.work, "dcs", []string{"plain", "tls"}[i]), SeqPuts: 2000, Clients: 16, ParallelPuts: 16000, ValueSize: 256,
			Idle: 3 * time.Second, Rounds: 4, TLS: tls,
			MemberCommand: func(file string) *exec.Cmd {
				return exec.Command(h.pgherd, "-q", "dcs", "serve", "--config", file)
			},
		})
		if err != nil {
			return "", err
		}
	}
	return "2000 sequential 256-byte puts (p50, p99) and 16000 puts from 16 clients, through etcd's clientv3 on loopback with fsync on, " +
		"in 4 rounds that alternate the systems (etcd first in rounds 1 and 3, pgherd in 2 and 4; both clusters up, one loaded at a time); " +
		"RSS is the mean of the members 3 s after both clusters started and 3 s after the last round. " +
		"The rows marked TLS come from a second run of the same bench with both systems on TLS: every client and peer port demands a client certificate " +
		"(etcd with --cert-file, --key-file, --client-cert-auth, --trusted-ca-file and their --peer- counterparts; pgherd with client_tls and peer_tls), " +
		"all certificates ECDSA P-256 made for the run by pgherd's own CAs. " +
		"Goals: p50 and p99 ≤ 1.0×, throughput ≥ 1.0×, idle RSS ≤ 0.75×.\n\n" + rs[0].Markdown() + rs[1].Rows(), nil
}
