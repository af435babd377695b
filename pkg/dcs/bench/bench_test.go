package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/dcs/server"
)

const memberEnv = "PGHERD_BENCH_MEMBER_CONFIG"

// TestMain lets this test binary act as a pgherd member process, so the
// benchmark measures separate processes without needing a built pgherd.
func TestMain(m *testing.M) {
	if file := os.Getenv(memberEnv); file != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		cfg, err := dcs.LoadConfig(file)
		if err == nil {
			err = server.Serve(ctx, cfg)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// BenchmarkDCSvsEtcd prints the side-by-side table; run it with
// go test -run '^$' -bench DCSvsEtcd -benchtime 1x ./pkg/dcs/bench
// Members are this test binary unless PGHERD_BIN names a pgherd binary,
// whose `dcs serve` then runs them.
func BenchmarkDCSvsEtcd(b *testing.B) {
	if _, err := exec.LookPath("etcd"); err != nil {
		b.Skip("etcd is not installed")
	}
	for range b.N {
		r, err := Run(context.Background(), Options{
			Dir: b.TempDir(), SeqPuts: 2000, Clients: 16, ParallelPuts: 16000, ValueSize: 256, Idle: 3 * time.Second, Rounds: 4,
			MemberCommand: memberCommand,
		})
		if err != nil {
			b.Fatal(err)
		}
		fmt.Print(r.Markdown())
	}
}

// TestRowsNameTLS: a TLS run's rows are told apart from a plain run's in
// the one table they share.
func TestRowsNameTLS(t *testing.T) {
	f := Figures{P50: time.Millisecond, P99: 2 * time.Millisecond, Throughput: 1000, IdleRSS: 20e6, AfterLoadRSS: 30e6}
	plain := (&Result{Opts: Options{Clients: 16}, Etcd: f, Pgherd: f}).Markdown()
	secure := (&Result{Opts: Options{Clients: 16, TLS: true}, Etcd: f, Pgherd: f}).Rows()
	if strings.Contains(plain, "TLS") || !strings.Contains(plain, "| sequential put p50 | 1ms | 1ms | 1.00× |") {
		t.Errorf("plain table:\n%s", plain)
	}
	for _, row := range []string{"| sequential put p50, TLS |", "| sequential put p99, TLS |", "| puts/s, 16 clients, TLS |", "| idle RSS per member, TLS |", "| RSS after the load, TLS |"} {
		if !strings.Contains(secure, row) {
			t.Errorf("TLS rows lack %q:\n%s", row, secure)
		}
	}
	if strings.Contains(secure, "|---|") {
		t.Errorf("Rows repeats the table's header:\n%s", secure)
	}
}

// memberCommand runs a member as this test binary, or as PGHERD_BIN's
// `dcs serve` when set.
func memberCommand(file string) *exec.Cmd {
	if bin := os.Getenv("PGHERD_BIN"); bin != "" {
		return exec.Command(bin, "-q", "dcs", "serve", "--config", file)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), memberEnv+"="+file)
	return cmd
}

// TestTLSClustersDemandCertificates: on a TLS run both clusters serve the
// bench's client over TLS and refuse a client without a certificate, so
// the TLS rows measure mutual TLS on both sides.
func TestTLSClustersDemandCertificates(t *testing.T) {
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("etcd is not installed")
	}
	ctx := context.Background()
	dir := t.TempDir()
	certs, err := newBenchPKI(filepath.Join(dir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Dir: dir, MemberCommand: memberCommand, TLS: true}
	for name, start := range map[string]func(context.Context, Options, *benchPKI) ([]proc, []string, error){"etcd": startEtcd, "pgherd": startPgherd} {
		procs, eps, err := start(ctx, o, certs)
		t.Cleanup(func() {
			for _, p := range procs {
				p.stop()
			}
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.HasPrefix(eps[0], "https://") {
			t.Fatalf("%s serves clients at %v", name, eps)
		}
		noCert := certs.clientTLS().Clone()
		noCert.Certificates = nil
		cl, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: noCert, DialTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		c, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err = cl.Put(c, "/bench/nocert", "1")
		cancel()
		cl.Close()
		if err == nil {
			t.Errorf("%s accepted a put from a client without a certificate", name)
		}
	}
}
