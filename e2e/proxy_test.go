package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon"
	"github.com/nbpool/nbpool/daemon/daemontest"
)

// The proxy tests run the real daemon (in process, or the built binary as a
// process where its memory is measured) in front of fakenb containers on the
// local engine. Their helpers carry a px prefix: the package is shared with
// the other end-to-end suites.

// pxBinding is the fake binding every proxy test spawns from.
const pxBinding = "fake"

// pxConfig is a test config with one fake binding and a pool of minPool.
// With tokenless, fakenb runs without --token, so the proxy is the only
// gate: a 200 from fakenb then proves the proxy let the request through.
func pxConfig(t testing.TB, minPool int, tokenless bool) daemon.Config {
	t.Helper()
	cfg := daemontest.Config(t, minPool)
	if tokenless {
		cfg.Bindings[0].Command = []string{"/fakenb", "--port={port}", "--base-url={base_url}"}
	}
	return cfg
}

// pxStart runs an in-process daemon with a warm pool of n and returns it
// once the pool is full.
func pxStart(t testing.TB, n int, tokenless bool) *daemontest.Daemon {
	t.Helper()
	d := daemontest.Start(t, pxConfig(t, n, tokenless))
	d.WaitPool(t, pxBinding, n, 60*time.Second)
	return d
}

// pxSpawn claims a launch of the fake binding and waits until it is
// claimed and routed; the launch carries Location, Token and Address.
func pxSpawn(t testing.TB, c *api.Client) api.Launch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, status, err := c.Spawn(ctx, pxBinding, api.SpawnRequest{})
	if err != nil {
		t.Fatalf("spawn: %d %v", status, err)
	}
	for l.State != api.StateClaimed || l.Address == "" {
		if l.State == api.StateEnded {
			t.Fatalf("launch %s ended while starting: %s %s", l.ID, l.EndReason, l.Error)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("launch %s not claimed within 60s: %+v", l.ID, l)
		case <-time.After(50 * time.Millisecond):
		}
		token := l.Token
		if l, err = c.Launch(ctx, pxBinding, l.ID); err != nil {
			t.Fatalf("launch %s: %v", l.ID, err)
		}
		if l.Token == "" {
			l.Token = token
		}
	}
	if l.Token == "" || l.Location != "/user/"+l.ID+"/" {
		t.Fatalf("spawned launch lacks token or location: %+v", l)
	}
	return l
}

// pxRaw sends one HTTP/1.1 request, exactly as written, to the daemon at
// base (http://host:port) on a fresh connection, and returns the response
// with its body read. requestURI goes on the wire unchanged; headers are
// "Name: value" lines; a Host header among them replaces the default.
func pxRaw(t testing.TB, base, method, requestURI string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	addr := strings.TrimPrefix(base, "http://")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	var b strings.Builder
	b.WriteString(method + " " + requestURI + " HTTP/1.1\r\n")
	hasHost := false
	for _, h := range headers {
		if h == "" {
			continue
		}
		hasHost = hasHost || strings.HasPrefix(strings.ToLower(h), "host:")
		b.WriteString(h + "\r\n")
	}
	if !hasHost {
		b.WriteString("Host: " + addr + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, requestURI, err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, requestURI, err)
	}
	return res, body
}

// pxArrival is fakenb's description of a request it received.
type pxArrival struct {
	Method     string      `json:"method"`
	RequestURI string      `json:"requestURI"`
	RawPath    string      `json:"rawPath"`
	Path       string      `json:"path"`
	Host       string      `json:"host"`
	Headers    http.Header `json:"headers"`
	Cookies    []string    `json:"cookies"`
}

// pxArrived decodes a fakenb description, or reports false if body is not
// one (a proxy answer, or fakenb's own 403/404).
func pxArrived(body []byte) (pxArrival, bool) {
	var a pxArrival
	if err := json.Unmarshal(body, &a); err != nil || a.RequestURI == "" || a.Method == "" {
		return pxArrival{}, false
	}
	return a, true
}

// pxProxyError decodes the proxy's JSON error answer.
func pxProxyError(body []byte) (*api.Error, bool) {
	var e api.ErrorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
		return nil, false
	}
	return e.Error, true
}

// pxQuery is "?token=" and the token, escaped.
func pxQuery(token string) string { return "?token=" + url.QueryEscape(token) }
