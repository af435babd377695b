package patroni

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRESTPasswordStaysHome: a member key in the DCS whose api_url points
// at a server of the test's (anyone who can write to the DCS can write
// one) never receives the REST password: reads go to it without
// credentials, and changes are refused before anything is sent. Reads of
// the members pgherd knows carry no credentials either.
func TestRESTPasswordStaysHome(t *testing.T) {
	h := clusterEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var mu sync.Mutex
	var seen []string // "METHOD PATH" of each request carrying credentials
	requests := 0
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	foreign := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		if r.Header.Get("Authorization") != "" {
			seen = append(seen, r.Method+" "+r.URL.Path)
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"state":"running","role":"replica","pause":false}`))
	}))
	foreign.Listener.Close()
	foreign.Listener = ln
	foreign.Start()
	t.Cleanup(foreign.Close)

	key := clusterPrefix(DefaultNamespace, testScope) + "members/intruder"
	etcdPut(t, h, key, `{"conn_url":"postgres://127.0.0.1:1/postgres","api_url":"`+foreign.URL+`/patroni","state":"running","role":"replica","timeline":1,"pending_restart":true}`)
	t.Cleanup(func() { etcdDelete(t, h, key) })

	c := h.members[0].client
	var intruder Member
	if err := poll(30*time.Second, func() error {
		cl, err := c.Cluster(ctx)
		if err != nil {
			return err
		}
		for _, m := range cl.Members {
			if m.Name == "intruder" {
				intruder = m
				return nil
			}
		}
		return errors.New("the intruder's key is not in GET /cluster yet")
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ForMember(intruder).Patroni(ctx); err != nil {
		t.Fatal(err)
	}
	_ = c.allPaused(ctx, false) // reads every member, the intruder included
	if _, err := c.ForMember(intruder).Restart(ctx, RestartRequest{RestartPending: true}); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("a restart sent to an api_url from the DCS: %v", err)
	}
	if err := c.ForMember(intruder).Reload(ctx); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("a reload sent to an api_url from the DCS: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if requests < 2 {
		t.Fatalf("the foreign server got %d requests: the reads did not reach it", requests)
	}
	if len(seen) > 0 {
		t.Fatalf("the foreign server received credentials on %v", seen)
	}

	// Reads of a known member go without credentials; a change to it, with.
	var got []string
	rec := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if _, _, ok := r.BasicAuth(); ok {
			got = append(got, r.Method+" "+r.URL.Path)
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	known := *c
	known.http = rec
	if _, err := known.Patroni(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := known.Cluster(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := known.Config(ctx); err != nil {
		t.Fatal(err)
	}
	if len(got) > 0 {
		t.Fatalf("reads sent credentials: %v", got)
	}
	if err := known.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "POST /reload" {
		t.Fatalf("a change to a known member went without the password: %v", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func etcdDelete(t *testing.T, h *testHarness, key string) {
	g, err := dcsGateway(Etcd3{Hosts: []string{h.etcdHost}}, 5*time.Second)
	if err != nil {
		t.Error(err)
		return
	}
	var out map[string]any
	if err := g.Call(context.Background(), "/v3/kv/deleterange", map[string][]byte{"key": []byte(key)}, &out); err != nil {
		t.Error(err)
	}
}

// TestReadFileRefusesWhatRootMustNotUse: the member YAML sits in a
// directory Patroni's account can write. A scope that would make root
// build a path outside pgherd's (the credentials file it deletes), and a
// symbolic link in the YAML's place, are refused.
func TestReadFileRefusesWhatRootMustNotUse(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pg1.yaml")
	cfg := New(goldenSpec())
	cfg.Scope = "../../../etc/x"
	b, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), `scope: invalid cluster name "../../../etc/x": use 1 to 32 letters`) {
		t.Fatalf("scope %q read back: %v", cfg.Scope, err)
	}
	good := New(goldenSpec())
	if err := good.WriteFile(filepath.Join(dir, "real.yaml"), nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "real.yaml"), filepath.Join(dir, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(filepath.Join(dir, "link.yaml")); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("a symlinked YAML was read: %v", err)
	}
	// The backup before a last member's drop copies no file a link names.
	if bak, err := BackupFile(filepath.Join(dir, "link.yaml"), time.Now()); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("a symlinked YAML was backed up to %s: %v", bak, err)
	}
	if _, err := ReadCredentials(filepath.Join(dir, "link.yaml")); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("symlinked credentials were read: %v", err)
	}
}
