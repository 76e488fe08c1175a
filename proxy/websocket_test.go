package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// dialWS opens a websocket to path on launch r through the proxy, with an
// Origin matching the Host, as a browser would send.
func (f *fixture) dialWS(t testing.TB, r Route, path string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{ReadBufferSize: 4096, WriteBufferSize: 4096, HandshakeTimeout: 5 * time.Second}
	h := http.Header{"Origin": {"http://" + f.addrHost}, "Authorization": {"token " + r.Token}}
	c, res, err := d.Dial("ws://"+f.addrHost+"/user/"+r.ID+path, h)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	if res.Header.Get("X-Backend") != map[string]string{idA: "A", idB: "B"}[r.ID] {
		t.Fatalf("upgraded by backend %q", res.Header.Get("X-Backend"))
	}
	c.SetReadLimit(4 << 20)
	return c
}

// TestWebsocketEcho: 1,000 text and binary messages of up to 1 MiB echo
// back intact over 50 concurrent connections; afterwards no goroutine is
// left and no tunnel is open.
func TestWebsocketEcho(t *testing.T) {
	f := newFixture(t, Options{})
	base := runtime.NumGoroutine()
	const conns, perConn = 50, 20

	cs := make([]*websocket.Conn, conns)
	for i := range cs {
		cs[i] = f.dialWS(t, []Route{f.ra, f.rb}[i%2], "/api/kernels/k"+fmt.Sprint(i)+"/channels/ws")
	}
	waitOpen(t, f.p, conns)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for j := range perConn {
				size := rng.IntN(1 << rng.IntN(21))
				if j == 0 {
					size = 1 << 20
				}
				mt := websocket.BinaryMessage
				msg := make([]byte, size)
				if j%2 == 0 {
					mt = websocket.TextMessage
					copy(msg, letters[rng.IntN(1<<20):])
				} else {
					fillPattern(msg, int64(rng.IntN(1<<20)))
				}
				if err := c.WriteMessage(mt, msg); err != nil {
					errs <- fmt.Errorf("conn %d msg %d: write: %w", i, j, err)
					return
				}
				gt, got, err := c.ReadMessage()
				if err != nil {
					errs <- fmt.Errorf("conn %d msg %d: read: %w", i, j, err)
					return
				}
				if gt != mt || !bytes.Equal(got, msg) {
					errs <- fmt.Errorf("conn %d msg %d: type %d len %d came back as type %d len %d", i, j, mt, len(msg), gt, len(got))
					return
				}
			}
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			// Wait for the backend's close frame, as a browser does.
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s := f.p.Stats(); s.Websockets != conns {
		t.Errorf("Websockets = %d, want %d", s.Websockets, conns)
	}
	waitOpen(t, f.p, 0)
	waitGoroutines(t, base)
}

// letters is 2 MiB of lower-case text, to slice text messages from.
var letters = func() []byte {
	b := make([]byte, 2<<20)
	for i := range b {
		b[i] = 'a' + patternBlock[i%len(patternBlock)]%26
	}
	return b
}()

// waitOpen waits until the proxy counts n open tunnels.
func waitOpen(t testing.TB, p *Proxy, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().OpenWebsockets != n {
		if time.Now().After(deadline) {
			t.Fatalf("OpenWebsockets = %d, want %d", p.Stats().OpenWebsockets, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWebsocketClose: Remove closes the route's tunnels only,
// CloseWebsockets all; a backend or client that closes ends its tunnel;
// nothing leaks.
func TestWebsocketClose(t *testing.T) {
	f := newFixture(t, Options{})
	base := runtime.NumGoroutine()

	a1, a2 := f.dialWS(t, f.ra, "/ws"), f.dialWS(t, f.ra, "/ws")
	b1 := f.dialWS(t, f.rb, "/ws")
	waitOpen(t, f.p, 3)

	f.p.Remove(idA)
	for _, c := range []*websocket.Conn{a1, a2} {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, _, err := c.ReadMessage(); err == nil || isTimeout(err) {
			t.Errorf("tunnel of a removed route still open: %v", err)
		}
		c.Close()
	}
	waitOpen(t, f.p, 1)
	if err := b1.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := b1.ReadMessage(); err != nil || string(msg) != "still here" {
		t.Fatalf("B's tunnel after removing A: %q %v", msg, err)
	}

	b2 := f.dialWS(t, f.rb, "/ws")
	waitOpen(t, f.p, 2)
	if n := f.p.CloseWebsockets(); n != 2 {
		t.Errorf("CloseWebsockets = %d, want 2", n)
	}
	b1.Close()
	b2.Close()
	waitOpen(t, f.p, 0)

	// The client goes away without a close frame.
	b3 := f.dialWS(t, f.rb, "/ws")
	waitOpen(t, f.p, 1)
	b3.NetConn().Close()
	waitOpen(t, f.p, 0)

	// The backend goes away: the client sees the end.
	f.p.Add(f.ra)
	a3 := f.dialWS(t, f.ra, "/ws")
	waitOpen(t, f.p, 1)
	if err := a3.WriteMessage(websocket.TextMessage, []byte("bye")); err != nil {
		t.Fatal(err)
	}
	_ = a3.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, _, err := a3.ReadMessage(); err == nil || isTimeout(err) {
		t.Errorf("client not told that the backend closed: %v", err)
	}
	a3.Close()
	waitOpen(t, f.p, 0)
	waitGoroutines(t, base)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestWebsocketRefused: a backend that does not switch protocols is
// relayed as is, and a client without the token never reaches it.
func TestWebsocketRefused(t *testing.T) {
	f := newFixture(t, Options{})
	up := []string{"Connection: keep-alive, Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}
	res, body := f.raw(t, "GET", "/user/"+idA+"/ws-refuse?token="+f.ra.Token, up...)
	if res.StatusCode != 400 || res.Header.Get("X-Backend") != "A" || !strings.Contains(string(body), "no websocket here") {
		t.Errorf("refused upgrade: %d %q %s", res.StatusCode, res.Header.Get("X-Backend"), body)
	}
	res, _ = f.raw(t, "GET", "/user/"+idA+"/ws", up...)
	if res.StatusCode != 403 || res.Header.Get("X-Backend") != "" {
		t.Errorf("upgrade without token: %d %q", res.StatusCode, res.Header.Get("X-Backend"))
	}
	// The backend's Origin check sees the client's Origin and Host.
	res, _ = f.raw(t, "GET", "/user/"+idA+"/ws?token="+f.ra.Token, append(up, "Origin: http://evil.example")...)
	if res.StatusCode != 403 || res.Header.Get("X-Backend") != "A" {
		t.Errorf("cross-origin upgrade: %d %q", res.StatusCode, res.Header.Get("X-Backend"))
	}
	if s := f.p.Stats(); s.OpenWebsockets != 0 || s.Websockets != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestActivityWebsocket: a websocket chunk in either direction advances
// LastActivity.
func TestActivityWebsocket(t *testing.T) {
	f := newFixture(t, Options{})
	c := f.dialWS(t, f.rb, "/ws")
	defer c.Close()
	old := time.Now().Add(-time.Hour)

	// Client to backend (and the echo back).
	f.p.Touch(idB, old)
	mark := time.Now()
	if err := c.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.p.LastActivity(idB); !got.After(mark) {
		t.Errorf("after a message: LastActivity %v not after %v", got, mark)
	}
	if since := f.p.ActivitySince(mark); len(since) != 1 || since[idB].IsZero() {
		t.Errorf("ActivitySince = %v, want only %s", since, idB)
	}

	// Backend to client alone: the backend pushes 200 ms after "push".
	if err := c.WriteMessage(websocket.TextMessage, []byte("push")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the client's chunk pass first
	f.p.Touch(idB, old)
	mark = time.Now()
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "pushed" {
		t.Fatalf("push: %q %v", msg, err)
	}
	if got, _ := f.p.LastActivity(idB); !got.After(mark) {
		t.Errorf("after a pushed message: LastActivity %v not after %v", got, mark)
	}
}

// TestWebsocketEarlyData: bytes the backend sends right after its 101, in
// the same packet, reach the client.
func TestWebsocketEarlyData(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello from the backend")
		io.Copy(io.Discard, c)
	}()
	f := newFixture(t, Options{})
	f.p.Add(Route{ID: idA, Target: l.Addr().String(), Token: f.ra.Token})

	c, err := net.Dial("tcp", f.addrHost)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /user/%s/ws?token=%s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", idA, f.ra.Token)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 101 {
		t.Fatalf("%v %v", res, err)
	}
	got := make([]byte, len("hello from the backend"))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "hello from the backend" {
		t.Fatalf("early data %q %v", got, err)
	}
}

// TestIdleTunnelMemory opens idle websocket tunnels through the proxy to a
// backend that holds its end without reading, and checks what each costs
// in live heap and goroutine stacks after a GC: at most 64 KiB (the target
// for a live launch holding one websocket). The client and backend ends
// of the connections (a few hundred bytes each) are counted too; kernel
// socket buffers are not process memory and are not.
func TestIdleTunnelMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 400 tunnels")
	}
	const n = 400
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	held := make(chan net.Conn, n)
	go func() { // handshake and hold, with no goroutine per connection
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
				c.Close()
				continue
			}
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			held <- c
		}
	}()
	f := newFixture(t, Options{})
	f.p.Add(Route{ID: idA, Target: l.Addr().String(), Token: f.ra.Token})

	measure := func() (heap, stack uint64, goroutines int) {
		var ms runtime.MemStats
		for range 2 {
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine()
	}
	heap0, stack0, g0 := measure()
	clients := make([]net.Conn, 0, n)
	req := fmt.Sprintf("GET /user/%s/api/kernels/k/channels HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: token %s\r\n\r\n", idA, f.ra.Token)
	for range n {
		c, err := net.Dial("tcp", f.addrHost)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, req)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || res.StatusCode != 101 {
			t.Fatalf("%v %v", res, err)
		}
		clients = append(clients, c)
	}
	waitOpen(t, f.p, n)
	time.Sleep(100 * time.Millisecond) // let the handler goroutines exit
	heap1, stack1, g1 := measure()
	per := (int64(heap1+stack1) - int64(heap0+stack0)) / n
	t.Logf("per idle tunnel: %d B (heap %d B, stacks %d B), %.1f goroutines",
		per, (int64(heap1)-int64(heap0))/n, (int64(stack1)-int64(stack0))/n, float64(g1-g0)/n)
	if per > 64<<10 && raceFactor == 0 {
		t.Errorf("an idle tunnel costs %d B, target 64 KiB", per)
	}
	// Every tunnel still carries data.
	for _, c := range clients {
		io.WriteString(c, "x")
	}
	one := make([]byte, 1)
	for range n {
		b := <-held
		_ = b.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.ReadFull(b, one); err != nil || one[0] != 'x' {
			t.Fatalf("backend end of a tunnel: %q %v", one, err)
		}
		b.Close()
	}
	for _, c := range clients {
		c.Close()
	}
	waitOpen(t, f.p, 0)
}
