// Command fakenb stands in for a Jupyter notebook server in nbpool's tests
// and benchmarks. It answers Jupyter's api/status, checks tokens the way
// Jupyter does, echoes websocket messages on the kernel channels endpoint,
// streams and swallows large bodies, and describes any other request it
// receives as JSON, so a test can see exactly what a proxy forwarded.
//
// It is built as a static binary and shipped in a scratch image
// (nbpool-test/fakenb:latest, see build.sh), where it runs as PID 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// shutdownGrace bounds how long a stop signal waits for in-flight requests.
// Long streams and websockets are cut off after it: the container is going
// away, and PID 1 must exit promptly.
const shutdownGrace = time.Second

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fakenb:", err)
		os.Exit(1)
	}
}

// run parses args, serves until SIGTERM or SIGINT, and returns nil after a
// clean stop. As PID 1 in a container the process gets no default signal
// handling, so the handler is installed explicitly.
func run(args []string, logw io.Writer) error {
	fs := flag.NewFlagSet("fakenb", flag.ContinueOnError)
	fs.SetOutput(logw)
	port := fs.Int("port", 8888, "TCP port to listen on")
	ip := fs.String("ip", "0.0.0.0", "address to listen on")
	base := fs.String("base-url", "/", "URL prefix everything is served under")
	token := fs.String("token", "", "token required on every request (empty: no auth)")
	readyDelay := fs.Duration("ready-delay", 0, "api/status answers 503 until this long after start")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// Like Jupyter's --ip, an IPv4 address (the default 0.0.0.0) means IPv4
	// only; Go's "tcp" would turn 0.0.0.0 into a dual-stack [::].
	network := "tcp"
	if a, err := netip.ParseAddr(*ip); err == nil && a.Is4() {
		network = "tcp4"
	}
	ln, err := net.Listen(network, net.JoinHostPort(*ip, strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	h := newServer(options{
		baseURL:    *base,
		token:      *token,
		readyDelay: *readyDelay,
		start:      time.Now(),
	})
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(logw, "fakenb: listening on %s base_url=%s auth=%t ready_delay=%s\n",
		ln.Addr(), h.base, len(h.token) > 0, *readyDelay)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}

	// A fresh context: ctx is already cancelled and would give no grace.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
