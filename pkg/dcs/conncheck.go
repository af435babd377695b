package dcs

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// connClosed tells, without blocking, whether the other end has closed c
// or sent something unasked (a TLS alert): a peek at its socket that finds
// end-of-file, data, or an error other than "would block".
func connClosed(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		// Only "would block" means open and quiet; 0 bytes is end-of-file.
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = !errors.Is(err, syscall.EAGAIN)
		return true
	})
	return closed || err != nil
}
