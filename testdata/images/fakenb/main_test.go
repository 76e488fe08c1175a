package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const testToken = "s3cret"

// newTestServer serves a fakenb handler under /user/abc/ with testToken.
func newTestServer(t *testing.T, o options) (*httptest.Server, *server) {
	t.Helper()
	if o.baseURL == "" {
		o.baseURL = "/user/abc"
	}
	if o.start.IsZero() {
		o.start = time.Now()
	}
	h := newServer(o)
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts, h
}

func get(t *testing.T, url string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNormaliseBase(t *testing.T) {
	for in, want := range map[string]string{
		"":          "/",
		"/":         "/",
		"user/abc":  "/user/abc/",
		"/user/abc": "/user/abc/",
		"/x/":       "/x/",
	} {
		if got := normaliseBase(in); got != want {
			t.Errorf("normaliseBase(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestToken(t *testing.T) {
	ts, _ := newTestServer(t, options{token: testToken})
	base := ts.URL + "/user/abc/"
	tests := []struct {
		name string
		path string
		hdr  []string
		want int
	}{
		{"missing", "small", nil, 403},
		{"query", "small?token=" + testToken, nil, 200},
		{"query wrong", "small?token=nope", nil, 403},
		{"query prefix", "small?token=s3cre", nil, 403},
		{"query among others", "small?a=1&token=" + testToken + "&b=2", nil, 200},
		{"header token", "small", []string{"Authorization", "token " + testToken}, 200},
		{"header Bearer", "small", []string{"Authorization", "Bearer " + testToken}, 200},
		{"header case", "small", []string{"Authorization", "TOKEN " + testToken}, 200},
		{"header wrong", "small", []string{"Authorization", "token nope"}, 403},
		{"header basic", "small", []string{"Authorization", "Basic " + testToken}, 403},
		{"query wins over header", "small?token=nope", []string{"Authorization", "token " + testToken}, 403},
		{"status needs it", "api/status", nil, 403},
		{"describe needs it", "tree", nil, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := get(t, base+tt.path, tt.hdr...)
			body := readAll(t, resp.Body)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tt.want, body)
			}
			if tt.want == 403 {
				if got := strings.TrimSpace(string(body)); got != `{"message": "Forbidden"}` {
					t.Errorf("body %q", got)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
			}
		})
	}

	t.Run("outside base", func(t *testing.T) {
		for _, p := range []string{"/elsewhere", "/user/abc", "/user/abcd/small"} {
			if resp := get(t, ts.URL+p+"?token="+testToken); resp.StatusCode != 404 {
				t.Errorf("%s: status %d, want 404", p, resp.StatusCode)
			}
		}
	})

	t.Run("no token set", func(t *testing.T) {
		ts, _ := newTestServer(t, options{})
		resp := get(t, ts.URL+"/user/abc/small")
		if body := readAll(t, resp.Body); resp.StatusCode != 200 || string(body) != "ok\n" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	})
}

func TestStatus(t *testing.T) {
	start := time.Now().Add(-time.Minute)
	ts, _ := newTestServer(t, options{token: testToken, start: start})
	resp := get(t, ts.URL+"/user/abc/api/status?token="+testToken)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 4 {
		t.Errorf("keys: %v, want exactly started, last_activity, connections, kernels", m)
	}
	for _, k := range []string{"started", "last_activity"} {
		s, _ := m[k].(string)
		ts, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Errorf("%s: %v", k, err)
		} else if d := ts.Sub(start); d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("%s = %s, want %s", k, s, start.UTC())
		}
	}
	if m["connections"] != 0.0 || m["kernels"] != 0.0 {
		t.Errorf("connections %v kernels %v, want 0 0", m["connections"], m["kernels"])
	}
}

func TestStatusReadyDelay(t *testing.T) {
	ts, _ := newTestServer(t, options{readyDelay: 300 * time.Millisecond})
	if resp := get(t, ts.URL+"/user/abc/api/status"); resp.StatusCode != 503 {
		t.Fatalf("before the delay: status %d, want 503", resp.StatusCode)
	}
	time.Sleep(350 * time.Millisecond)
	if resp := get(t, ts.URL+"/user/abc/api/status"); resp.StatusCode != 200 {
		t.Fatalf("after the delay: status %d, want 200", resp.StatusCode)
	}
}

func connections(t *testing.T, ts *httptest.Server) float64 {
	t.Helper()
	var m map[string]any
	resp := get(t, ts.URL+"/user/abc/api/status", "Authorization", "token "+testToken)
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m["connections"].(float64)
}

func TestWebsocketEcho(t *testing.T) {
	ts, _ := newTestServer(t, options{token: testToken})
	url := "ws" + strings.TrimPrefix(ts.URL, "http") + "/user/abc/api/kernels/k-1/channels?token=" + testToken
	c, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"https://elsewhere.example"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	big := make([]byte, 1<<20)
	rand.Read(big)
	msgs := []struct {
		typ  int
		data []byte
	}{
		{websocket.TextMessage, []byte(`{"msg_type": "kernel_info_request"}`)},
		{websocket.BinaryMessage, big},
		{websocket.TextMessage, bytes.Repeat([]byte("x"), 2<<20)},
	}
	for _, m := range msgs {
		if err := c.WriteMessage(m.typ, m.data); err != nil {
			t.Fatal(err)
		}
		typ, got, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if typ != m.typ || !bytes.Equal(got, m.data) {
			t.Fatalf("echo of %d bytes type %d: got %d bytes type %d", len(m.data), m.typ, len(got), typ)
		}
	}
	if n := connections(t, ts); n != 1 {
		t.Errorf("connections while open = %v, want 1", n)
	}
	c.Close()
	deadline := time.Now().Add(2 * time.Second)
	for connections(t, ts) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("connections did not drop to 0 after close")
		}
		time.Sleep(10 * time.Millisecond)
	}

	t.Run("needs token", func(t *testing.T) {
		_, resp, err := websocket.DefaultDialer.Dial(strings.TrimSuffix(url, testToken)+"x", nil)
		if err == nil || resp == nil || resp.StatusCode != 403 {
			t.Fatalf("err %v resp %v, want 403", err, resp)
		}
	})
}

func TestBytes(t *testing.T) {
	ts, _ := newTestServer(t, options{token: testToken})
	const n = 100_000
	for _, chunked := range []bool{false, true} {
		url := ts.URL + "/user/abc/bytes/100000?token=" + testToken
		if chunked {
			url += "&chunked=1"
		}
		resp := get(t, url)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		wantLen := int64(n)
		if chunked {
			wantLen = -1
		}
		if resp.ContentLength != wantLen {
			t.Errorf("chunked=%t: ContentLength %d, want %d", chunked, resp.ContentLength, wantLen)
		}
		body := readAll(t, resp.Body)
		if len(body) != n {
			t.Fatalf("chunked=%t: %d bytes, want %d", chunked, len(body), n)
		}
		for i, b := range body {
			if b != byte(i) {
				t.Fatalf("byte %d = %d, want %d", i, b, byte(i))
			}
		}
	}
	if resp := get(t, ts.URL+"/user/abc/bytes/x?token="+testToken); resp.StatusCode != 400 {
		t.Errorf("bytes/x: status %d, want 400", resp.StatusCode)
	}
}

func TestUpload(t *testing.T) {
	ts, _ := newTestServer(t, options{token: testToken})
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	sum := sha256.Sum256(data)
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/user/abc/upload", bytes.NewReader(data))
	req.Header.Set("Authorization", "token "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Size != int64(len(data)) || got.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("got %+v, want size %d sha256 %x", got, len(data), sum)
	}
}

func TestEvents(t *testing.T) {
	ts, _ := newTestServer(t, options{token: testToken})
	const interval = 300 * time.Millisecond
	begin := time.Now()
	resp := get(t, ts.URL+"/user/abc/events?n=3&interval=300ms&token="+testToken)
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var events []string
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			events = append(events, line)
			if len(events) == 1 && time.Since(begin) > interval*2/3 {
				t.Errorf("first event after %s: not flushed", time.Since(begin))
			}
		}
	}
	want := []string{`data: {"i": 0}`, `data: {"i": 1}`, `data: {"i": 2}`}
	if strings.Join(events, "|") != strings.Join(want, "|") {
		t.Errorf("events %q, want %q", events, want)
	}
	if d := time.Since(begin); d < 2*interval {
		t.Errorf("3 events took %s, want at least %s", d, 2*interval)
	}
}

// TestDescribe writes the request by hand so the target on the wire is
// exactly what the test says.
func TestDescribe(t *testing.T) {
	ts, _ := newTestServer(t, options{token: testToken})
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const target = "/user/abc/files/a%2Fb%20c%C3%BC.txt?x=%41&token=" + testToken
	_, err = io.WriteString(conn, "PUT "+target+" HTTP/1.1\r\n"+
		"Host: nb.example:8443\r\n"+
		"X-Forwarded-For: 10.1.2.3\r\n"+
		"X-Multi: one\r\nX-Multi: two\r\n"+
		"Cookie: _xsrf=abc; session=x%3Dy\r\n"+
		"Content-Length: 0\r\n"+
		"Connection: close\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got arrival
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := arrival{
		Method:     "PUT",
		RequestURI: target,
		RawPath:    "/user/abc/files/a%2Fb%20c%C3%BC.txt",
		Path:       "/user/abc/files/a/b cü.txt",
		Host:       "nb.example:8443",
		Proto:      "HTTP/1.1",
	}
	if got.Method != want.Method || got.RequestURI != want.RequestURI || got.RawPath != want.RawPath ||
		got.Path != want.Path || got.Host != want.Host || got.Proto != want.Proto {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if got.RemoteAddr != conn.LocalAddr().String() {
		t.Errorf("remoteAddr %q, want %q", got.RemoteAddr, conn.LocalAddr())
	}
	if v := got.Headers["X-Multi"]; strings.Join(v, ",") != "one,two" {
		t.Errorf("X-Multi %q", v)
	}
	if v := got.Headers.Get("X-Forwarded-For"); v != "10.1.2.3" {
		t.Errorf("X-Forwarded-For %q", v)
	}
	if strings.Join(got.Cookies, "; ") != "_xsrf=abc; session=x%3Dy" {
		t.Errorf("cookies %q", got.Cookies)
	}
}
