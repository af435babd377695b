package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// realEtcd is a 3-member etcd 3.4 cluster from Debian's etcd-server,
// started on loopback with its data in t.TempDir; the reference for
// conformance tests and benchmarks.
type realEtcd struct {
	clientURLs []string
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startRealEtcd(t testing.TB, n int) *realEtcd { return startRealEtcdTLS(t, n, nil, nil, nil) }

// startRealEtcdTLS starts it with mutual TLS on both ports when peer and
// client are set (certificates with their CA, as a pgherd member's); tc is
// the client side.
func startRealEtcdTLS(t testing.TB, n int, peer, client *dcs.TLSConfig, tc *tls.Config) *realEtcd {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("etcd (Debian etcd-server) is not installed")
	}
	dir := t.TempDir()
	var peers, clients, initial []string
	for i := range n {
		scheme := "http://"
		if client != nil {
			scheme = "https://"
		}
		peers = append(peers, scheme+freePort(t))
		clients = append(clients, scheme+freePort(t))
		initial = append(initial, fmt.Sprintf("m%d=%s", i, peers[i]))
	}
	for i := range n {
		cmd := exec.Command("etcd", "--name", fmt.Sprintf("m%d", i),
			"--data-dir", filepath.Join(dir, fmt.Sprintf("m%d", i)),
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "pgherd-test", "--log-level", "error", "--logger", "zap")
		if client != nil {
			cmd.Args = append(cmd.Args, "--cert-file", client.Cert, "--key-file", client.Key,
				"--trusted-ca-file", client.CA, "--client-cert-auth",
				"--peer-cert-file", peer.Cert, "--peer-key-file", peer.Key,
				"--peer-trusted-ca-file", peer.CA, "--peer-client-cert-auth")
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	e := &realEtcd{clientURLs: clients}
	cl, err := clientv3.New(clientv3.Config{Endpoints: clients, DialTimeout: 5 * time.Second, TLS: tc})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cl.Put(ctx, "/__ready", "1")
		if err == nil {
			_, err = cl.Delete(ctx, "/__ready")
		}
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("real etcd did not become ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return e
}
