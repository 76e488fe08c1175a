package daemon

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// A client that connected before the drain and sends its request during it
// is answered, not dropped: http.Server.Shutdown alone reads the request and
// closes the connection without an answer (golang/go#75591).
func TestDrainAnswersAcceptedConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "answered")
	})}
	hs := newHTTPServer(srv, ln, zerolog.Nop())
	served := make(chan error, 1)
	go func() { served <- hs.serve() }()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for deadline := time.Now().Add(5 * time.Second); hs.freshConns() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the connection was never accepted")
		}
		time.Sleep(time.Millisecond)
	}

	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		drained <- hs.drain(ctx)
	}()
	// The drain has begun: the listener is closed.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond); err != nil {
			break
		} else {
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts during the drain")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: nbpool\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("request sent on a connection accepted before the drain: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "answered" {
		t.Fatalf("want 200 answered, have %d %q", resp.StatusCode, body)
	}
	if err := <-drained; err != nil {
		t.Errorf("drain: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("serve after the drain: %v", err)
	}
}

// A drain that outlasts its context closes what is left and is not an
// error (a stop at the end of the grace period is the policy, not a
// failure).
func TestDrainCutsAtDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})}
	defer close(release)
	hs := newHTTPServer(srv, ln, zerolog.Nop())
	go func() { _ = hs.serve() }()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := hs.drain(ctx); err != nil {
		t.Errorf("drain past its deadline: %v, want nil", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("drain took %s with a 300ms deadline", took)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("the stream outlasting the drain was not cut")
	}
}
