//go:build linux && !386

package proxy

import (
	"net"
	"syscall"
	"unsafe"
)

// waiter blocks until a connection has something to read (data, EOF or an
// error) without holding a buffer, so an idle tunnel holds none: the copy
// buffer is taken from the pool only once a read will not block. It uses
// the runtime's poller through syscall.RawConn and peeks one byte with
// MSG_PEEK|MSG_DONTWAIT, which consumes nothing.
//
// Connections that are not sockets (a *tls.Conn) get a nil waiter, and the
// pump then blocks in Read with its buffer, as io.Copy would.
type waiter struct {
	rc    syscall.RawConn
	ready func(fd uintptr) bool // w.peek, bound once so wait allocates nothing
	b     [1]byte
}

func newWaiter(c net.Conn) *waiter {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &waiter{rc: rc}
	w.ready = w.peek
	return w
}

// wait returns when a Read on the connection will not block, or with the
// error that a closed connection or an expired deadline gives.
func (w *waiter) wait() error {
	if w == nil {
		return nil
	}
	return w.rc.Read(w.ready)
}

// peek reports whether fd is readable; false makes RawConn.Read wait for
// the poller and call it again.
func (w *waiter) peek(fd uintptr) bool {
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&w.b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default: // data, EOF, or an error that Read will report
			return true
		}
	}
}
