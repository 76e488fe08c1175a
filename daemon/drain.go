package daemon

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// freshWait bounds how long the drain waits for accepted connections to
// send their first request.
const freshWait = time.Second

// httpServer serves the daemon's HTTP and drains it at shutdown so that
// every request that reached nbpool is answered. http.Server.Shutdown alone
// drops, unanswered, a request that it reads after the shutdown began even
// on a connection it had accepted before (golang/go#75591): the client sees
// EOF. So the drain first stops accepting, then lets the connections already
// accepted send their first request, and only then shuts the server down.
type httpServer struct {
	srv *http.Server
	ln  net.Listener
	log zerolog.Logger

	stopping atomic.Bool

	mu    sync.Mutex
	fresh map[net.Conn]struct{} // accepted, first request not read yet
}

// newHTTPServer wraps srv, which must not be serving yet, and ln. It sets
// srv.ConnState.
func newHTTPServer(srv *http.Server, ln net.Listener, log zerolog.Logger) *httpServer {
	s := &httpServer{srv: srv, ln: &onceCloseListener{Listener: ln}, log: log, fresh: map[net.Conn]struct{}{}}
	srv.ConnState = s.connState
	return s
}

func (s *httpServer) connState(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if state == http.StateNew {
		s.fresh[c] = struct{}{}
	} else {
		delete(s.fresh, c)
	}
}

// serve serves until the drain; it returns nil then.
func (s *httpServer) serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) || s.stopping.Load() {
		return nil
	}
	return err
}

// drain stops accepting connections, waits (up to a second) for the
// accepted ones to send their first request, then shuts down within ctx:
// requests in flight are answered, idle connections closed. When ctx ends
// first, the connections left are closed: a stream that outlasts the grace
// period is cut, and that is not an error.
func (s *httpServer) drain(ctx context.Context) error {
	s.stopping.Store(true)
	if err := s.ln.Close(); err != nil {
		s.log.Warn().Err(err).Msg("close listener")
	}
	wctx, cancel := context.WithTimeout(ctx, freshWait)
	defer cancel()
	for s.freshConns() > 0 && wctx.Err() == nil {
		select {
		case <-wctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn().Msg("grace period over: closing the connections left")
		return s.srv.Close()
	}
	return err
}

// onceCloseListener closes once: the drain closes it, then Shutdown, which
// would report the second close as an error.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

func (s *httpServer) freshConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.fresh)
}
