package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestCompareBuilds compares two or more builds of pgherd on sequential
// puts, interleaved in blocks of 100 so that a busy phase of a shared
// machine falls on every build alike (runs one after the other do not
// tell a 0.1 ms change from noise). Each build runs a 3-member cluster;
// the figures are put latency p50 and p99 and the CPU time all members
// of a build used per put (user + system, from /proc), which the load of
// other processes disturbs far less than latency. Run it with
//
//	PGHERD_COMPARE=old/bin/pgherd:bin/pgherd go test -run CompareBuilds -v ./pkg/dcs/bench
//
// (PGHERD_COMPARE_TLS=1 runs the clusters on TLS.) Without
// PGHERD_COMPARE it is skipped.
func TestCompareBuilds(t *testing.T) {
	bins := strings.Split(os.Getenv("PGHERD_COMPARE"), ":")
	if len(bins) < 2 {
		t.Skip("PGHERD_COMPARE names no builds to compare")
	}
	ctx := context.Background()
	var certs *benchPKI
	if os.Getenv("PGHERD_COMPARE_TLS") != "" {
		var err error
		if certs, err = newBenchPKI(filepath.Join(t.TempDir(), "pki")); err != nil {
			t.Fatal(err)
		}
	}
	type build struct {
		bin   string
		procs []proc
		cl    *clientv3.Client
		lat   []time.Duration
		cpu   time.Duration
	}
	var builds []*build
	for _, bin := range bins {
		b := &build{bin: bin}
		builds = append(builds, b)
		var eps []string
		var err error
		b.procs, eps, err = startPgherd(ctx, Options{Dir: t.TempDir(), MemberCommand: func(file string) *exec.Cmd {
			return exec.Command(bin, "-q", "dcs", "serve", "--config", file)
		}}, certs)
		t.Cleanup(func() {
			for _, p := range b.procs {
				p.stop()
			}
		})
		if err != nil {
			t.Fatalf("%s: %v", bin, err)
		}
		if b.cl, err = clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, TLS: certs.clientTLS()}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.cl.Close() })
	}
	value := strings.Repeat("v", 256)
	for i := range 30 {
		for k := range builds {
			b := builds[(i+k)%len(builds)]
			c0 := cpuTime(t, b.procs)
			for j := range 100 {
				t0 := time.Now()
				if _, err := b.cl.Put(ctx, fmt.Sprintf("/bench/seq/%d", j), value); err != nil {
					t.Fatalf("%s: %v", b.bin, err)
				}
				b.lat = append(b.lat, time.Since(t0))
			}
			b.cpu += cpuTime(t, b.procs) - c0
		}
	}
	for _, b := range builds {
		sort.Slice(b.lat, func(i, j int) bool { return b.lat[i] < b.lat[j] })
		fmt.Printf("%s: p50 %v, p99 %v, member CPU per put %v\n", b.bin, b.lat[len(b.lat)/2].Round(time.Microsecond),
			b.lat[len(b.lat)*99/100].Round(time.Microsecond), (b.cpu / time.Duration(len(b.lat))).Round(time.Microsecond))
	}
}

// cpuTime is the user and system time the processes used so far.
func cpuTime(t *testing.T, procs []proc) time.Duration {
	var sum time.Duration
	for _, p := range procs {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		// Fields after the command's closing parenthesis: utime and stime
		// are the 12th and 13th, in clock ticks (100 a second on Linux).
		s := string(raw)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		for _, v := range f[11:13] {
			ticks, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			sum += time.Duration(ticks) * 10 * time.Millisecond
		}
	}
	return sum
}
