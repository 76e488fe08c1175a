package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Done when 1: 1,000 websocket messages, text and binary, from empty to
// 1 MiB, echo back intact over 50 connections open at once through the
// daemon to one fakenb container. Half the connections carry the launch
// token in ?token=, half in the Authorization header.
func TestProxyWebsocketEcho(t *testing.T) {
	const (
		conns   = 50
		perConn = 20 // 1,000 messages in all
		maxSize = 1 << 20
	)
	d := pxStart(t, 1, false)
	l := pxSpawn(t, d.Client)

	// Payloads are windows of two shared read-only buffers: random bytes
	// for binary messages, UTF-8 text for text messages.
	rng := rand.New(rand.NewPCG(1, 2))
	binSrc := make([]byte, 2*maxSize)
	for i := range binSrc {
		binSrc[i] = byte(rng.Uint32())
	}
	line := `{"msg_type": "stream", "content": {"text": "naïve café ☕ 日本語"}}` + "\n"
	textSrc := []byte(strings.Repeat(line, 2*maxSize/len(line)+2))
	sizes := []int{0, 1, 125, 126, 127, 4095, 16 << 10, 65535, 65536, 65537, 200_000, maxSize - 1, maxSize}
	type message struct {
		typ  int
		data []byte
	}
	plan := func(c, j int) message {
		g := c*perConn + j
		size := sizes[g%len(sizes)]
		off := (g * 7919) % maxSize
		if g%2 == 0 {
			// From a line start to a rune start: valid UTF-8, up to 3
			// bytes short of size.
			off -= off % len(line)
			b := textSrc[off : off+size]
			for len(b) > 0 {
				if r, n := utf8.DecodeLastRune(b); r != utf8.RuneError || n != 1 {
					break
				}
				b = b[:len(b)-1]
			}
			return message{websocket.TextMessage, b}
		}
		return message{websocket.BinaryMessage, binSrc[off : off+size]}
	}

	base := "ws" + strings.TrimPrefix(d.URL, "http") + l.Location + "api/kernels/"
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10}
	ws := make([]*websocket.Conn, conns)
	for c := range ws {
		u, h := base+fmt.Sprintf("k%d/channels", c), http.Header{}
		if c%2 == 0 {
			u += pxQuery(l.Token)
		} else {
			h.Set("Authorization", "token "+l.Token)
		}
		conn, res, err := dialer.Dial(u, h)
		if err != nil {
			t.Fatalf("dial %d: %v (%v)", c, err, res)
		}
		ws[c] = conn
		defer conn.Close()
	}
	// All 50 are open at the container at once (fakenb counts a connection
	// just after it answers the upgrade: give it a moment).
	status := "http://" + l.Address + l.Location + "api/status" + pxQuery(l.Token)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n := pxConnections(t, status)
		if n == conns {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fakenb has %d websocket connections, want %d", n, conns)
		}
	}

	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bytesMoved int64
	errs := make(chan error, conns)
	for c, conn := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Minute))
			var moved int64
			for j := range perConn {
				m := plan(c, j)
				if err := conn.WriteMessage(m.typ, m.data); err != nil {
					errs <- fmt.Errorf("conn %d message %d: write: %w", c, j, err)
					return
				}
				typ, got, err := conn.ReadMessage()
				if err != nil {
					errs <- fmt.Errorf("conn %d message %d: read: %w", c, j, err)
					return
				}
				if typ != m.typ || !bytes.Equal(got, m.data) {
					errs <- fmt.Errorf("conn %d message %d: sent type %d, %d bytes; got type %d, %d bytes, equal %v",
						c, j, m.typ, len(m.data), typ, len(got), bytes.Equal(got, m.data))
					return
				}
				moved += int64(len(m.data))
			}
			mu.Lock()
			bytesMoved += moved
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	took := time.Since(start)
	t.Logf("%d messages (%.1f MiB each way) echoed over %d connections in %v",
		conns*perConn, float64(bytesMoved)/(1<<20), conns, took.Round(time.Millisecond))

	for _, conn := range ws {
		_ = conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	}
}

// pxConnections asks fakenb's api/status, directly, how many websocket
// connections it has open.
func pxConnections(t testing.TB, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st struct {
		Connections int `json:"connections"`
	}
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatalf("api/status: %s: %v", res.Status, err)
	}
	return st.Connections
}
