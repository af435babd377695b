// Package gateway is pgherd's one client of etcd's v3 JSON gateway, the
// HTTP side of the etcd API that Patroni's etcd3 client uses and that both
// etcd and pgherd's embedded DCS serve. It reads Patroni's keys, deletes a
// cluster's and fetches a member's snapshot without an etcd client library
// (whose gRPC would slow the start of every pgherd command), and it never
// waits without bound: a member that accepts a connection and then says
// nothing is an error after Config.Timeout.
//
// It imports nothing of pgherd's, so that pkg/patroni (which pkg/dcs
// imports through pkg/site) can use it as well as pkg/dcs and pkg/witness.
package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds a request when Config.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Config says where the gateway is and how long to wait for it.
type Config struct {
	// Endpoints are base URLs (http://host:port, https://host:port), tried
	// in this order until one answers.
	Endpoints []string
	// TLS is the client configuration for https endpoints (nil: the
	// system's roots, no client certificate).
	TLS *tls.Config
	// Timeout bounds each request: connecting, sending and the whole
	// answer (Call), or the wait for each part of the answer (Stream).
	Timeout time.Duration
	// What names the service in errors ("DCS", "member w1"); "" means
	// "etcd gateway".
	What string
}

// Client calls one gateway. It is safe for concurrent use.
type Client struct {
	cfg  Config
	http *http.Client
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("no etcd gateway endpoint given")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.What == "" {
		cfg.What = "etcd gateway"
	}
	tr := &http.Transport{
		// No proxy: a DCS is reached directly, whatever HTTP_PROXY says.
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
		TLSClientConfig:       cfg.TLS,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		// HTTP/1.1, as Patroni's urllib3: the embedded DCS's client port
		// serves the gateway over HTTP/2 only without TLS (its gRPC
		// sniffing answers an HTTP/2 client first).
		ForceAttemptHTTP2: false,
	}
	return &Client{cfg: cfg, http: &http.Client{Transport: tr}}, nil
}

// Close releases the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// UnreachableError is returned when no endpoint answered at all.
type UnreachableError struct {
	What   string
	Errors []string // one per endpoint tried: "URL: why"
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("no %s endpoint answers (%s)", e.What, strings.Join(e.Errors, "; "))
}

// StatusError is an endpoint's answer with an HTTP error status.
type StatusError struct {
	URL     string
	Code    int
	Message string // the gateway's error message, else the body's start
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s answered %d %s: %s", e.URL, e.Code, http.StatusText(e.Code), e.Message)
}

// Call posts in, as JSON, to path (such as "/v3/kv/range") on the first
// endpoint that answers, and decodes its answer into out. An endpoint that
// answers with an error status is not tried again elsewhere: its answer is
// the error (*StatusError). Each try takes at most Config.Timeout.
func (c *Client) Call(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	var errs []string
	for _, base := range c.cfg.Endpoints {
		b, err := c.call(ctx, base+path, body)
		if err == nil {
			return json.Unmarshal(b, out)
		}
		var se *StatusError
		if errors.As(err, &se) || ctx.Err() != nil {
			return err
		}
		errs = append(errs, err.Error())
	}
	return &UnreachableError{What: c.cfg.What, Errors: errs}
}

func (c *Client) call(ctx context.Context, u string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	resp, err := c.post(ctx, u, body)
	if err != nil {
		return nil, c.timedOut(ctx, u, err, "no answer in")
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, c.timedOut(ctx, u, fmt.Errorf("%s: %w", u, plain(err)), "no whole answer in")
	}
	return b, nil
}

// timedOut says that u did not answer in time when the request's own
// bound (not the caller's context) ended err's request.
func (c *Client) timedOut(ctx context.Context, u string, err error, what string) error {
	var ne net.Error
	if context.Cause(ctx) == errIdle || errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%s: %s %s", u, what, c.cfg.Timeout)
	}
	return err
}

// post sends one request and returns a 200 answer; any other status is a
// *StatusError.
func (c *Client) post(ctx context.Context, u string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if errors.Is(err, io.EOF) {
		// pgherd's DCS members close a request's connection unanswered
		// while they have no leader, so that Patroni tries another one.
		return nil, fmt.Errorf("%s: closed the connection without an answer (a pgherd DCS member does so while it has no leader): %w", u, plain(err))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, plain(err))
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, &StatusError{URL: u, Code: resp.StatusCode, Message: message(b)}
	}
	return resp, nil
}

// Stream posts in to path on the first endpoint that answers and returns
// its answer as it comes (a stream of JSON messages, such as a snapshot's).
// No answer within Config.Timeout, or no byte of it for as long, ends the
// stream with an error; the caller closes it.
func (c *Client) Stream(ctx context.Context, path string, in any) (io.ReadCloser, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	var errs []string
	for _, base := range c.cfg.Endpoints {
		sctx, cancel := context.WithCancelCause(ctx)
		idle := time.AfterFunc(c.cfg.Timeout, func() { cancel(errIdle) })
		resp, err := c.post(sctx, base+path, body)
		if err == nil {
			return &idleReader{body: resp.Body, timer: idle, timeout: c.cfg.Timeout, ctx: sctx, cancel: cancel, url: base + path}, nil
		}
		idle.Stop()
		if ctx.Err() == nil {
			err = c.timedOut(sctx, base+path, err, "no answer in")
		}
		cancel(nil)
		var se *StatusError
		if errors.As(err, &se) || ctx.Err() != nil {
			return nil, err
		}
		errs = append(errs, err.Error())
	}
	return nil, &UnreachableError{What: c.cfg.What, Errors: errs}
}

var errIdle = errors.New("idle")

// idleReader cancels its request when a read waits longer than timeout.
type idleReader struct {
	body    io.ReadCloser
	timer   *time.Timer
	timeout time.Duration
	ctx     context.Context
	cancel  context.CancelCauseFunc
	url     string
}

func (r *idleReader) Read(p []byte) (int, error) {
	r.timer.Reset(r.timeout)
	n, err := r.body.Read(p)
	if err != nil && err != io.EOF && context.Cause(r.ctx) == errIdle {
		err = fmt.Errorf("%s: nothing more for %s", r.url, r.timeout)
	}
	return n, err
}

func (r *idleReader) Close() error {
	r.timer.Stop()
	r.cancel(nil)
	return r.body.Close()
}

// plain drops url.Error's `Post "http://...":` prefix, which the caller's
// own message already says.
func plain(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// message returns the gateway's error message from an error body
// ({"error": ..., "message": ..., "code": ...}), else the body's start.
func message(b []byte) string {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &e) == nil {
		if e.Message != "" {
			return e.Message
		}
		if e.Error != "" {
			return e.Error
		}
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// KeyValue is one key of a range answer (the gateway sends bytes as
// base64, which encoding/json decodes).
type KeyValue struct {
	Key   []byte `json:"key"`
	Value []byte `json:"value"`
}

// Range returns every key that starts with prefix. serializable reads what
// the endpoint holds, even without a quorum; otherwise the read is
// linearizable.
func (c *Client) Range(ctx context.Context, prefix string, serializable bool) ([]KeyValue, error) {
	in := struct {
		Key          []byte `json:"key"`
		RangeEnd     []byte `json:"range_end"`
		Serializable bool   `json:"serializable,omitempty"`
	}{[]byte(prefix), PrefixEnd([]byte(prefix)), serializable}
	var out struct {
		Kvs []KeyValue `json:"kvs"`
	}
	if err := c.Call(ctx, "/v3/kv/range", in, &out); err != nil {
		return nil, err
	}
	return out.Kvs, nil
}

// DeletePrefix deletes every key that starts with prefix and returns how
// many there were.
func (c *Client) DeletePrefix(ctx context.Context, prefix string) (int64, error) {
	in := struct {
		Key      []byte `json:"key"`
		RangeEnd []byte `json:"range_end"`
	}{[]byte(prefix), PrefixEnd([]byte(prefix))}
	var out struct {
		Deleted string `json:"deleted"` // an int64, as a JSON string
	}
	if err := c.Call(ctx, "/v3/kv/deleterange", in, &out); err != nil {
		return 0, err
	}
	n, _ := strconv.ParseInt(out.Deleted, 10, 64)
	return n, nil
}

// PrefixEnd is etcd's range end for "every key that starts with prefix":
// prefix with its last byte below 0xff incremented, and what follows it
// dropped; "\x00" (every key) when there is no such byte.
func PrefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}
