package server

import (
	"bytes"
	"net"
)

// The client port serves gRPC and the JSON gateway on one listener: cmux
// sends each connection to gRPC when its first HTTP/2 request is a gRPC
// one. To see that request from a gRPC client, which waits for the
// server's SETTINGS before it sends any, cmux's matcher answers each
// SETTINGS frame the client sends before its first header block with a
// SETTINGS frame of its own. An HTTP/2 connection that turns out not to be
// gRPC (curl over TLS, which negotiates h2, or with
// --http2-prior-knowledge) goes to the HTTP server with those frames
// already sent, so the client acknowledges SETTINGS frames the HTTP server
// never sent, and the server ends the connection with PROTOCOL_ERROR at
// the first such acknowledgement. ackFilterListener removes, from each
// connection, as many acknowledgements as cmux wrote frames: the first
// ones, since the client acknowledges in the order it receives and cmux
// wrote before the HTTP server did. HTTP/1 connections pass untouched.

// http2Preface starts every HTTP/2 connection (RFC 9113, section 3.4).
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

const (
	frameHeaderLen = 9
	frameHeaders   = 0x1
	frameSettings  = 0x4
	frameContinue  = 0x9
	flagAck        = 0x1
	flagEndHeaders = 0x4
)

// ackFilterListener wraps the HTTP side of the client port's listener.
type ackFilterListener struct{ net.Listener }

func (l ackFilterListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &ackFilterConn{Conn: c}, nil
}

// ackFilterConn passes the bytes it reads through, except the SETTINGS
// acknowledgements that answer cmux's frames. Once those are dropped, or
// the connection is found not to be HTTP/2, it reads straight from the
// connection.
type ackFilterConn struct {
	net.Conn
	done     bool
	pre      []byte // preface bytes seen so far
	hdr      []byte // the current frame header, while incomplete
	payload  int    // bytes of the current frame's payload still to pass
	headers  bool   // the client's first header block has ended: cmux wrote its last frame
	settings int    // SETTINGS frames cmux answered
	dropped  int    // acknowledgements dropped
	out      []byte // filtered bytes not yet returned
	err      error  // the read error behind out
	buf      [4096]byte
}

func (c *ackFilterConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 && !c.done && c.err == nil {
		n, err := c.Conn.Read(c.buf[:])
		c.feed(c.buf[:n])
		c.err = err
	}
	if len(c.out) > 0 {
		n := copy(p, c.out)
		c.out = c.out[n:]
		return n, nil
	}
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(p)
}

// feed filters b into c.out.
func (c *ackFilterConn) feed(b []byte) {
	for len(b) > 0 && !c.done {
		switch {
		case len(c.pre) < len(http2Preface):
			k := min(len(b), len(http2Preface)-len(c.pre))
			c.pre = append(c.pre, b[:k]...)
			b = b[k:]
			if !bytes.HasPrefix([]byte(http2Preface), c.pre) {
				c.done = true // not HTTP/2
			}
			c.out = append(c.out, c.pre[len(c.pre)-k:]...)
		case c.payload > 0:
			k := min(len(b), c.payload)
			c.out = append(c.out, b[:k]...)
			c.payload -= k
			b = b[k:]
		default:
			k := min(len(b), frameHeaderLen-len(c.hdr))
			c.hdr = append(c.hdr, b[:k]...)
			b = b[k:]
			if len(c.hdr) == frameHeaderLen {
				c.frame()
			}
		}
	}
	c.out = append(c.out, b...)
}

// frame handles a complete frame header in c.hdr.
func (c *ackFilterConn) frame() {
	length := int(c.hdr[0])<<16 | int(c.hdr[1])<<8 | int(c.hdr[2])
	typ, flags := c.hdr[3], c.hdr[4]
	if typ == frameSettings && flags&flagAck != 0 && length == 0 && c.dropped < c.settings {
		c.dropped++ // answers cmux's frame: not passed on
	} else {
		switch {
		case typ == frameSettings && flags&flagAck == 0 && !c.headers:
			c.settings++
		case (typ == frameHeaders || typ == frameContinue) && flags&flagEndHeaders != 0:
			c.headers = true
		}
		c.out = append(c.out, c.hdr...)
		c.payload = length
	}
	c.hdr = c.hdr[:0]
	c.done = c.headers && c.dropped == c.settings
}
