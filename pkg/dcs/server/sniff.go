package server

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// While `pgherd dcs tls enable` switches a cluster (dcs.Config.AcceptPlain),
// a member's ports serve TLS and plain TCP on one listener. The first
// byte a client sends tells them apart: a TLS connection starts with a
// handshake record (0x16), which no peer protocol byte ('R', 'r', 'C')
// and no HTTP/1 or HTTP/2 client preface does. Nothing else changes: a
// TLS client is verified as on a TLS-only port; a plain one is served as
// on a plain-TCP member, unauthenticated, which is what the cluster was
// until the switch and stops being once every member speaks TLS.

// sniffTimeout bounds the wait for a new connection's first byte.
const sniffTimeout = 10 * time.Second

// sniffTLS reads c's first byte and returns c as a TLS server connection
// when it starts a handshake, else as the plain connection it is; the
// byte is not lost either way.
func sniffTLS(c net.Conn, tc *tls.Config) (net.Conn, error) {
	var b [1]byte
	c.SetReadDeadline(time.Now().Add(sniffTimeout))
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Time{})
	pc := &prefixConn{Conn: c, first: b[0], pending: true}
	if b[0] == dcs.TLSHandshakeByte {
		return tls.Server(pc, tc), nil
	}
	return pc, nil
}

// prefixConn gives back a byte already read from its connection.
type prefixConn struct {
	net.Conn
	mu      sync.Mutex
	first   byte
	pending bool
}

func (p *prefixConn) Read(b []byte) (int, error) {
	p.mu.Lock()
	if p.pending && len(b) > 0 {
		b[0], p.pending = p.first, false
		p.mu.Unlock()
		return 1, nil
	}
	p.mu.Unlock()
	return p.Conn.Read(b)
}

// sniffListener is the client port of a member switching to TLS: it
// yields TLS server connections and plain ones alike. Each connection's
// first byte is awaited in its own goroutine, so a slow client holds up
// no other.
type sniffListener struct {
	net.Listener
	tls   *tls.Config
	conns chan net.Conn
	errc  chan error
	done  chan struct{}
	once  sync.Once
}

func newSniffListener(ln net.Listener, tc *tls.Config) *sniffListener {
	s := &sniffListener{Listener: ln, tls: tc, conns: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{})}
	go s.accept()
	return s
}

func (s *sniffListener) accept() {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			s.errc <- err
			return
		}
		go func() {
			sc, err := sniffTLS(c, s.tls)
			if err != nil {
				c.Close()
				return
			}
			select {
			case s.conns <- sc:
			case <-s.done:
				c.Close()
			}
		}()
	}
}

func (s *sniffListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case err := <-s.errc:
		s.errc <- err // every later Accept fails alike
		return nil, err
	case <-s.done:
		return nil, net.ErrClosed
	}
}

func (s *sniffListener) Close() error {
	s.once.Do(func() { close(s.done) })
	return s.Listener.Close()
}
