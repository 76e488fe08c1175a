package proxy

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nbpool/nbpool/api"
)

func decodeError(t *testing.T, body []byte) *api.Error {
	t.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil {
		t.Fatalf("not an error body: %v\n%s", err, body)
	}
	return eb.Error
}

// TestNotFound: unknown and ended ids get the page or JSON, or a redirect.
func TestNotFound(t *testing.T) {
	const ended, gone = "EndedEndedEnded01", "NeverNeverNever01"
	opts := Options{Ended: func(_ context.Context, id string) (string, bool) {
		if id == ended {
			return "my-binding", true
		}
		if id == "XssXssXssXssXss01" {
			return `<script>alert(1)</script>`, true
		}
		return "", false
	}}
	f := newFixture(t, opts)

	res, body := f.raw(t, "GET", "/user/"+ended+"/tree", "Accept: text/html")
	if res.StatusCode != 404 || !strings.Contains(string(body), "This notebook session has ended") ||
		!strings.Contains(string(body), `href="/spawn/my-binding"`) || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Errorf("ended page: %d %s\n%s", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	res, body = f.raw(t, "GET", "/user/"+gone+"/tree")
	if res.StatusCode != 404 || !strings.Contains(string(body), `href="/"`) {
		t.Errorf("unknown page: %d\n%s", res.StatusCode, body)
	}
	_, body = f.raw(t, "GET", "/user/XssXssXssXssXss01/")
	if strings.Contains(string(body), "<script>") || !strings.Contains(string(body), "&lt;script&gt;") {
		t.Errorf("page does not escape the binding:\n%s", body)
	}

	for _, tc := range []struct{ uri, accept, relaunch string }{
		{"/user/" + ended + "/tree", "application/json", "/spawn/my-binding"},
		{"/user/" + ended + "/api/kernels", "", "/spawn/my-binding"},
		{"/user/" + gone + "/api/kernels", "*/*", "/"},
	} {
		res, body := f.raw(t, "GET", tc.uri, "Accept: "+tc.accept)
		e := decodeError(t, body)
		if res.StatusCode != 404 || e.Name != api.ErrSessionNotFound.Name || e.Status != 404 ||
			!strings.Contains(e.Message, tc.uri[6:23]) || len(e.Suggestions) != 1 ||
			!strings.Contains(e.Suggestions[0], tc.relaunch) || res.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %+v", tc.uri, res.StatusCode, e)
		}
	}

	opts.NotFoundRedirect = "https://example.org/404?from=nbpool"
	f = newFixture(t, opts)
	for _, tc := range []struct{ id, loc string }{
		{ended, "https://example.org/404?binding=my-binding&from=nbpool"},
		{gone, "https://example.org/404?from=nbpool"},
	} {
		res, _ := f.raw(t, "GET", "/user/"+tc.id+"/tree")
		if res.StatusCode != 302 || res.Header.Get("Location") != tc.loc {
			t.Errorf("%s: %d %q, want 302 %q", tc.id, res.StatusCode, res.Header.Get("Location"), tc.loc)
		}
	}
	if res, _ := f.raw(t, "GET", "/user/"+gone+"/api/status"); res.StatusCode != 404 {
		t.Errorf("API client redirected: %d", res.StatusCode)
	}
}

// TestForbiddenAnswer: the 403 is a page for browsers, JSON for API clients.
func TestForbiddenAnswer(t *testing.T) {
	f := newFixture(t, Options{})
	res, body := f.raw(t, "GET", "/user/"+idA+"/tree")
	if res.StatusCode != 403 || !strings.Contains(string(body), "needs its token") {
		t.Errorf("page: %d\n%s", res.StatusCode, body)
	}
	res, body = f.raw(t, "GET", "/user/"+idA+"/api/kernels")
	if e := decodeError(t, body); res.StatusCode != 403 || e.Name != api.ErrSessionForbidden.Name {
		t.Errorf("json: %d %+v", res.StatusCode, e)
	}
	if s := f.p.Stats(); s.Forbidden != 2 || s.Requests != 0 {
		t.Errorf("stats %+v", s)
	}
}

// freeAddr returns an address nobody listens on.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestUnreachable: a dead target gives 502 (page or JSON, HTTP or
// websocket) and Unreachable is called once.
func TestUnreachable(t *testing.T) {
	f := newFixture(t, Options{})
	const id = "DeadDeadDeadDead1"
	r := Route{ID: id, Binding: "dead", Target: freeAddr(t), Token: "deadbeef"}
	f.p.Add(r)

	res, body := f.raw(t, "GET", "/user/"+id+"/tree?token=deadbeef")
	if res.StatusCode != 502 || !strings.Contains(string(body), "does not answer") || !strings.Contains(string(body), `href="/spawn/dead"`) {
		t.Errorf("page: %d\n%s", res.StatusCode, body)
	}
	res, body = f.raw(t, "GET", "/user/"+id+"/api/kernels?token=deadbeef")
	if e := decodeError(t, body); res.StatusCode != 502 || e.Name != api.ErrSessionUnreachable.Name || !strings.Contains(e.Message, id) {
		t.Errorf("json: %d %+v", res.StatusCode, e)
	}
	res, _ = f.raw(t, "GET", "/user/"+id+"/api/kernels/k/channels?token=deadbeef",
		"Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
	if res.StatusCode != 502 {
		t.Errorf("websocket: %d", res.StatusCode)
	}

	select {
	case got := <-f.unreach:
		if got != id {
			t.Errorf("Unreachable(%q)", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Unreachable not called")
	}
	select {
	case got := <-f.unreach:
		t.Errorf("Unreachable called again (%q) within the rate limit", got)
	case <-time.After(100 * time.Millisecond):
	}
	if s := f.p.Stats(); s.Unreachable != 3 {
		t.Errorf("stats %+v", s)
	}
}

// A launch whose server is still starting gets a page that reloads itself
// (503 with Retry-After), not "session ended".
func TestStartingLaunch(t *testing.T) {
	const starting = "StartingStarting1"
	f := newFixture(t, Options{Starting: func(_ context.Context, id string) bool { return id == starting }})
	res, body := f.raw(t, "GET", "/user/"+starting+"/tree?token=x", "Accept: text/html")
	if res.StatusCode != 503 || res.Header.Get("Retry-After") != "2" ||
		!strings.Contains(string(body), `http-equiv="refresh"`) || !strings.Contains(string(body), "is starting") {
		t.Fatalf("starting page: %d %q\n%s", res.StatusCode, res.Header.Get("Retry-After"), body)
	}
	res, body = f.raw(t, "GET", "/user/"+starting+"/api/status")
	if res.StatusCode != 503 || !strings.Contains(string(body), `"sessionStarting"`) {
		t.Fatalf("starting, API client: %d %s", res.StatusCode, body)
	}
	if res, _ := f.raw(t, "GET", "/user/UnknownUnknown12/tree"); res.StatusCode != 404 {
		t.Fatalf("an unknown id is not starting: %d", res.StatusCode)
	}
}
