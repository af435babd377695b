package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPrefixEnd(t *testing.T) {
	for in, want := range map[string]string{"/service/main/": "/service/main0", "a\xff": "b", "\xff\xff": "\x00", "": "\x00"} {
		if got := string(PrefixEnd([]byte(in))); got != want {
			t.Errorf("PrefixEnd(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCallTriesTheNextEndpoint: an endpoint that does not answer is
// skipped; one that answers with an error status is the answer.
func TestCallTriesTheNextEndpoint(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/v3/kv/range":
			if !bytes.Contains(body, []byte(`"range_end":"L3MxMA=="`)) || !bytes.Contains(body, []byte(`"serializable":true`)) {
				t.Errorf("range request %s", body)
			}
			w.Write([]byte(`{"header":{},"kvs":[{"key":"L3MxL2E=","value":"eA=="}],"count":"1"}`))
		case "/v3/kv/deleterange":
			w.Write([]byte(`{"deleted":"3"}`))
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":"etcdserver: no leader","code":14,"message":"etcdserver: no leader"}`))
		}
	}))
	defer srv.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String()
	ln.Close()

	c, err := New(Config{Endpoints: []string{closed, srv.URL}, What: "DCS"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	kvs, err := c.Range(ctx, "/s1/", true)
	if err != nil || len(kvs) != 1 || string(kvs[0].Key) != "/s1/a" || string(kvs[0].Value) != "x" {
		t.Fatalf("range: %q, %v", kvs, err)
	}
	if n, err := c.DeletePrefix(ctx, "/s1/"); err != nil || n != 3 {
		t.Errorf("deleted %d, %v", n, err)
	}
	var se *StatusError
	var ue *UnreachableError
	if err := c.Call(ctx, "/v3/kv/put", struct{}{}, &struct{}{}); !errors.As(err, &se) || se.Code != 503 ||
		err.Error() != srv.URL+"/v3/kv/put answered 503 Service Unavailable: etcdserver: no leader" {
		t.Errorf("an error status: %v", err)
	}

	// A member without a leader closes the connection unanswered: the
	// next endpoint is tried, and the error says what such a close means.
	leaderless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer leaderless.Close()
	c, _ = New(Config{Endpoints: []string{leaderless.URL, srv.URL}, What: "DCS"})
	if kvs, err := c.Range(ctx, "/s1/", true); err != nil || len(kvs) != 1 {
		t.Errorf("range after a closed connection: %q, %v", kvs, err)
	}
	c, _ = New(Config{Endpoints: []string{leaderless.URL}, What: "DCS"})
	if err := c.Call(ctx, "/v3/kv/range", struct{}{}, &struct{}{}); !errors.As(err, &ue) ||
		err.Error() != "no DCS endpoint answers ("+leaderless.URL+"/v3/kv/range: closed the connection without an answer (a pgherd DCS member does so while it has no leader): EOF)" {
		t.Errorf("a closed connection: %v", err)
	}

	c, _ = New(Config{Endpoints: []string{closed}, What: "DCS"})
	if err := c.Call(ctx, "/v3/kv/range", struct{}{}, &struct{}{}); !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), "no DCS endpoint answers ("+closed+"/v3/kv/range: dial tcp") {
		t.Errorf("no endpoint: %v", err)
	}
}

// TestSilentEndpointIsBounded: an endpoint that accepts and says nothing
// is an error after Timeout, for a call and a stream; the next endpoint is
// then tried.
func TestSilentEndpointIsBounded(t *testing.T) {
	quiet := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-quiet }))
	defer hung.Close()
	defer close(quiet) // before Close, which waits for the handlers
	silent := hung.URL
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"result":{}}`)) }))
	defer srv.Close()

	c, _ := New(Config{Endpoints: []string{silent}, Timeout: 200 * time.Millisecond, What: "DCS"})
	ctx := context.Background()
	start := time.Now()
	err := c.Call(ctx, "/v3/kv/range", struct{}{}, &struct{}{})
	if want := "no DCS endpoint answers (" + silent + "/v3/kv/range: no answer in 200ms)"; err == nil || err.Error() != want {
		t.Errorf("call: %v, want %s", err, want)
	}
	if _, err := c.Stream(ctx, "/v3/maintenance/snapshot", struct{}{}); err == nil || !strings.Contains(err.Error(), "no answer in 200ms") {
		t.Errorf("stream: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("two bounded requests took %s", d)
	}
	c, _ = New(Config{Endpoints: []string{silent, srv.URL}, Timeout: 200 * time.Millisecond})
	var out map[string]any
	if err := c.Call(ctx, "/v3/kv/range", struct{}{}, &out); err != nil || out["result"] == nil {
		t.Errorf("the next endpoint: %v %v", out, err)
	}
}
