package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestGatewayHTTP2 reaches the JSON gateway with HTTP/2, as curl does by
// default over TLS (ALPN h2) and with --http2-prior-knowledge on a plain
// port: the connection is sniffed for gRPC first, and that sniffing must
// not make the HTTP server refuse it (it answered PROTOCOL_ERROR, so curl
// worked only with --http1.1). gRPC on the same port keeps working.
func TestGatewayHTTP2(t *testing.T) {
	range1 := func(t *testing.T, hc *http.Client, url string) {
		t.Helper()
		for i := range 3 { // several requests on one connection
			resp, err := hc.Post(url+"/v3/kv/range", "application/json", strings.NewReader(`{"key":"L2gy"}`))
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 || resp.StatusCode != 200 || !strings.Contains(string(body), `"value":"eWVz"`) {
				t.Fatalf("request %d: %s %d %s", i, resp.Proto, resp.StatusCode, body)
			}
		}
	}
	put := func(t *testing.T, cfg clientv3.Config) {
		t.Helper()
		cl, err := clientv3.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if _, err := cl.Put(ctxT(t, 20*time.Second), "/h2", "yes"); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("tls", func(t *testing.T) {
		p := newTestPKI(t)
		c := newCluster(t, 1, p.secure(nil))
		clientTLS := p.client("curl")
		put(t, clientv3.Config{Endpoints: c.endpoints(), TLS: clientTLS, DialTimeout: 5 * time.Second})
		range1(t, &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS, ForceAttemptHTTP2: true}}, c.servers[0].ClientURL())
	})
	t.Run("prior-knowledge", func(t *testing.T) {
		c := newCluster(t, 1, nil)
		put(t, clientv3.Config{Endpoints: c.endpoints(), DialTimeout: 5 * time.Second})
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		range1(t, &http.Client{Transport: &http.Transport{Protocols: &protos}}, c.servers[0].ClientURL())
	})
}

// TestGRPCContentSubtype: a gRPC client whose first request names its
// codec (content-type application/grpc+proto, as the gRPC spec allows) is
// served by gRPC, not by the gateway.
func TestGRPCContentSubtype(t *testing.T) {
	c := newCluster(t, 1, nil)
	conn, err := grpc.NewClient(strings.TrimPrefix(c.servers[0].ClientURL(), "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := pb.NewKVClient(conn).Range(ctxT(t, 10*time.Second), rangeReq("/h2"), grpc.CallContentSubtype("proto")); err != nil {
		t.Fatalf("application/grpc+proto: %v", err)
	}
}
