package server

import (
	"bytes"
	"io"
	"net"
	"testing"
	"testing/iotest"
)

type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// TestAckFilterConn: as many SETTINGS acknowledgements as cmux wrote
// SETTINGS frames (one per client SETTINGS frame before the first header
// block ends) are removed, the first ones, whatever the reads' sizes;
// other frames, later acknowledgements and HTTP/1 bytes pass unchanged.
func TestAckFilterConn(t *testing.T) {
	frame := func(typ, flags byte, payload string) string {
		n := len(payload)
		return string([]byte{byte(n >> 16), byte(n >> 8), byte(n), typ, flags, 0, 0, 0, 0}) + payload
	}
	settings := frame(frameSettings, 0, "\x00\x03\x00\x00\x00\x64")
	ack := frame(frameSettings, flagAck, "")
	window := frame(0x8, 0, "\x00\x00\x01\x00")
	// A header block whose payload holds bytes that look like an ack.
	headers := frame(frameHeaders, flagEndHeaders, ack+"xyz")
	split := frame(frameHeaders, 0, "ab") + frame(frameContinue, flagEndHeaders, "cd")
	for _, tc := range []struct{ name, in, want string }{
		{"one settings", http2Preface + settings + headers + ack + window + ack, http2Preface + settings + headers + window + ack},
		{"two settings", http2Preface + settings + window + settings + headers + ack + ack + ack, http2Preface + settings + window + settings + headers + ack},
		{"settings after the headers", http2Preface + settings + headers + settings + ack + ack + ack, http2Preface + settings + headers + settings + ack + ack},
		{"ack before the headers", http2Preface + settings + ack + split + ack, http2Preface + settings + split + ack},
		{"no ack yet", http2Preface + settings + headers, http2Preface + settings + headers},
		{"http1", "POST /v3/kv/range HTTP/1.1\r\n\r\n" + ack, "POST /v3/kv/range HTTP/1.1\r\n\r\n" + ack},
		{"short", "PRI", "PRI"},
	} {
		for _, one := range []bool{false, true} {
			var r io.Reader = bytes.NewReader([]byte(tc.in))
			if one {
				r = iotest.OneByteReader(r)
			}
			got, err := io.ReadAll(&ackFilterConn{Conn: readerConn{r: r}})
			if err != nil || string(got) != tc.want {
				t.Errorf("%s (one byte a read: %v): got %q, %v; want %q", tc.name, one, got, err, tc.want)
			}
		}
	}
}
