//go:build !linux || 386

package proxy

import "net"

// waiter is a no-op outside Linux (and on linux/386, which has no recvfrom syscall): pumps block in Read holding their
// buffer, as io.Copy would.
type waiter struct{}

func newWaiter(net.Conn) *waiter { return nil }

func (w *waiter) wait() error { return nil }
