package proxy

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
)

// echo is what the stand-in backend answers for any path it has no special
// handler for: exactly what arrived.
type echo struct {
	Backend    string              `json:"backend"`
	Method     string              `json:"method"`
	RequestURI string              `json:"requestURI"`
	Host       string              `json:"host"`
	Header     map[string][]string `json:"header"`
	Cookies    map[string]string   `json:"cookies"`
}

// uploaded is the backend's answer to POST .../upload.
type uploaded struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// backend is a stand-in notebook server named name: it echoes requests as
// JSON (with X-Backend: name), echoes websocket messages at .../ws, streams
// GET .../bytes/<n>, hashes POST .../upload, and serves an event stream at
// .../events whose second event waits for sseNext.
type backend struct {
	name    string
	srv     *httptest.Server
	sseNext chan struct{}
}

func newBackend(t testing.TB, name string) *backend {
	t.Helper()
	b := &backend{name: name, sseNext: make(chan struct{}, 1)}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.srv.Close)
	return b
}

// addr is the backend's "host:port", a Route.Target.
func (b *backend) addr() string { return strings.TrimPrefix(b.srv.URL, "http://") }

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Backend", b.name)
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/ws"):
		b.websocket(w, r)
	case strings.HasSuffix(p, "/ws-refuse"):
		http.Error(w, "no websocket here", http.StatusBadRequest)
	case strings.Contains(p, "/bytes/"):
		n, err := strconv.ParseInt(p[strings.LastIndex(p, "/")+1:], 10, 64)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		_, _ = io.Copy(w, io.LimitReader(&patternReader{}, n))
	case strings.HasSuffix(p, "/upload"):
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(uploaded{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
	case strings.HasSuffix(p, "/events"):
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: one\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-b.sseNext:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: two\n\n")
	case strings.HasSuffix(p, "/setcookie"):
		http.SetCookie(w, &http.Cookie{Name: "_xsrf", Value: "xsrf-" + b.name, Path: "/"})
		fallthrough
	default:
		e := echo{Backend: b.name, Method: r.Method, RequestURI: r.RequestURI, Host: r.Host,
			Header: r.Header, Cookies: map[string]string{}}
		for _, c := range r.Cookies() {
			e.Cookies[c.Name] = c.Value
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(e)
	}
}

// websocket echoes every message with its type. A text message "push"
// is answered after 200 ms by an extra text message "pushed", for tests
// of backend-to-client activity; "bye" drops the connection. The default CheckOrigin refuses an Origin
// whose host differs from the Host header, as Jupyter does.
func (b *backend) websocket(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}
	c, err := up.Upgrade(w, r, http.Header{"X-Backend": {b.name}})
	if err != nil {
		return
	}
	defer c.Close()
	c.SetReadLimit(4 << 20)
	for {
		mt, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if mt == websocket.TextMessage && string(msg) == "bye" {
			return // drop the connection without a close frame
		}
		if mt == websocket.TextMessage && string(msg) == "push" {
			time.Sleep(200 * time.Millisecond)
			msg = []byte("pushed")
		}
		if err := c.WriteMessage(mt, msg); err != nil {
			return
		}
	}
}

// patternReader is an endless reader of a 1 MiB pseudo-random block,
// repeated.
type patternReader struct{ off int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	n := fillPattern(b, p.off)
	p.off += int64(n)
	return n, nil
}

var patternBlock = func() []byte {
	b := make([]byte, 1<<20)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}()

func fillPattern(b []byte, off int64) int {
	n := 0
	for n < len(b) {
		n += copy(b[n:], patternBlock[(off+int64(n))%int64(len(patternBlock)):])
	}
	return n
}

// fixture is a proxy in an httptest server with two launches A and B on
// two backends.
type fixture struct {
	p        *Proxy
	srv      *httptest.Server
	a, b     *backend
	ra, rb   Route
	unreach  chan string
	addrHost string // "127.0.0.1:port" of the proxy
}

const (
	idA = "AAAAaaaa1111bbbbA"
	idB = "BBBBbbbb2222ccccB"
)

func newFixture(t testing.TB, opts Options) *fixture {
	t.Helper()
	f := &fixture{a: newBackend(t, "A"), b: newBackend(t, "B"), unreach: make(chan string, 16)}
	if opts.Unreachable == nil {
		opts.Unreachable = func(id string) { f.unreach <- id }
	}
	opts.Log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	f.p = New(opts)
	f.ra = Route{ID: idA, Binding: "alpha", Target: f.a.addr(), Token: strings.Repeat("a1", 32)}
	f.rb = Route{ID: idB, Binding: "beta", Target: f.b.addr(), Token: strings.Repeat("b2", 32)}
	f.p.Add(f.ra)
	f.p.Add(f.rb)
	f.srv = httptest.NewServer(f.p)
	t.Cleanup(func() {
		f.srv.Close()
		f.p.CloseWebsockets()
		f.p.transport.CloseIdleConnections()
	})
	f.addrHost = strings.TrimPrefix(f.srv.URL, "http://")
	return f
}

// raw sends one request with exactly this request line and these header
// lines (Host defaults to the proxy's address) over a fresh connection,
// and returns the response with its body read.
func (f *fixture) raw(t testing.TB, method, uri string, header ...string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", f.addrHost)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s HTTP/1.1\r\n", method, uri)
	hasHost := false
	for _, h := range header {
		hasHost = hasHost || strings.HasPrefix(strings.ToLower(h), "host:")
		sb.WriteString(h + "\r\n")
	}
	if !hasHost {
		sb.WriteString("Host: " + f.addrHost + "\r\n")
	}
	sb.WriteString("Connection: close\r\n\r\n")
	if _, err := io.WriteString(c, sb.String()); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, uri, err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, uri, err)
	}
	return res, body
}

// waitGoroutines waits until at most n goroutines run, and fails with
// their stacks if that does not happen in 5 s.
func waitGoroutines(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
