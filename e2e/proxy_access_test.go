package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/proxy"
)

// pxAnswerer names the launch whose container answered: fakenb answers 200
// only under its own base URL /user/<id>/, and the proxy forwards the path
// unchanged, so the launch whose base prefixes the decoded path fakenb saw
// is the one that answered.
func pxAnswerer(a pxArrival, names map[string]api.Launch) string {
	for name, l := range names {
		if strings.HasPrefix(a.Path, l.Location) {
			return name
		}
	}
	return "?" + a.Path
}

// Done when 3: the launch token opens a launch through each channel (query,
// Authorization "token" and "Bearer", the cookie a good request set), and
// nothing else opens it: no token, a wrong one, another launch's token or
// cookie, and path tricks that try to reach B through A's route never reach
// B. fakenb runs without its own token here, so the proxy is the only gate.
func TestProxyTokens(t *testing.T) {
	d := pxStart(t, 2, true)
	A, B := pxSpawn(t, d.Client), pxSpawn(t, d.Client)
	launches := map[string]api.Launch{"A": A, "B": B}

	// A good token in the query sets the cookie, scoped to the launch.
	cookieOf := map[string]string{}
	for name, l := range launches {
		res, body := pxRaw(t, d.URL, "GET", l.Location+"tree"+pxQuery(l.Token))
		if a, ok := pxArrived(body); res.StatusCode != 200 || !ok || pxAnswerer(a, launches) != name {
			t.Fatalf("%s with its token: %d %s", name, res.StatusCode, body)
		}
		var c *http.Cookie
		for _, k := range res.Cookies() {
			if k.Name == proxy.CookieName {
				c = k
			}
		}
		if c == nil || c.Value != l.Token || c.Path != l.Location || !c.HttpOnly ||
			c.SameSite != http.SameSiteLaxMode || c.Secure {
			t.Fatalf("%s: cookie %v; want %s=<token>, Path=%s, HttpOnly, SameSite=Lax, not Secure",
				name, res.Header["Set-Cookie"], proxy.CookieName, l.Location)
		}
		cookieOf[name] = c.Name + "=" + c.Value
	}

	wrong := pxRandomHex(t, len(A.Token)/2)
	sub := strings.NewReplacer("{A}", A.ID, "{B}", B.ID, "{tA}", A.Token, "{tB}", B.Token,
		"{wrong}", wrong, "{cA}", cookieOf["A"], "{cB}", cookieOf["B"])
	const (
		forbidden = "403"
		notFound  = "404"
	)
	cases := []struct {
		name    string
		uri     string
		headers []string
		want    string // a launch name, forbidden or notFound; "301 then X": a redirect, then X
	}{
		{"none", "/user/{A}/tree", nil, forbidden},
		{"none, API client", "/user/{A}/api/contents", nil, forbidden},
		{"wrong query", "/user/{A}/tree?token={wrong}", nil, forbidden},
		{"wrong header", "/user/{A}/tree", []string{"Authorization: token {wrong}"}, forbidden},
		{"wrong cookie", "/user/{A}/tree", []string{"Cookie: nbpool-token={wrong}"}, forbidden},
		{"empty query", "/user/{A}/tree?token=", nil, forbidden},
		{"token without scheme", "/user/{A}/tree", []string{"Authorization: {tA}"}, forbidden},
		{"basic scheme", "/user/{A}/tree", []string{"Authorization: Basic {tA}"}, forbidden},
		{"right query", "/user/{A}/tree?token={tA}", nil, "A"},
		{"right query, other params", "/user/{A}/tree?a=1&token={tA}&b=2", nil, "A"},
		{"right header token", "/user/{A}/tree", []string{"Authorization: token {tA}"}, "A"},
		{"right header Bearer", "/user/{A}/tree", []string{"Authorization: Bearer {tA}"}, "A"},
		{"right header bearer", "/user/{A}/tree", []string{"Authorization: bearer {tA}"}, "A"},
		{"right cookie", "/user/{A}/tree", []string{"Cookie: {cA}"}, "A"},
		{"right cookie among others", "/user/{A}/tree", []string{"Cookie: _xsrf=x; {cA}; other=y"}, "A"},
		{"B's query on A", "/user/{A}/tree?token={tB}", nil, forbidden},
		{"B's header on A", "/user/{A}/tree", []string{"Authorization: token {tB}"}, forbidden},
		{"B's cookie on A", "/user/{A}/tree", []string{"Cookie: {cB}"}, forbidden},
		{"A's cookie on B", "/user/{B}/tree", []string{"Cookie: {cA}"}, forbidden},
		{"A's cookie on B, API", "/user/{B}/api/contents", []string{"Cookie: {cA}"}, forbidden},
		{"B opens with B's token", "/user/{B}/tree?token={tB}", nil, "B"},
		// Path tricks. The proxy takes the id from the raw path and forwards
		// the path unchanged, so a route is only ever the id segment's own.
		{"dotdot with B's token", "/user/{A}/../{B}/tree?token={tB}", nil, forbidden},
		{"dotdot with B's cookie", "/user/{A}/../{B}/tree", []string{"Cookie: {cB}"}, forbidden},
		{"dotdot with A's token stays on A", "/user/{A}/../{B}/tree?token={tA}", nil, "A"},
		{"encoded dotdot with B's token", "/user/{A}%2F..%2F{B}/tree?token={tB}", nil, notFound},
		{"encoded dotdot with A's token", "/user/{A}%2F..%2F{B}/tree?token={tA}", nil, notFound},
		{"encoded slash after id", "/user/{A}%2F/tree?token={tA}", nil, notFound},
		{"empty id segment", "/user//{B}/tree?token={tB}", nil, notFound},
		{"dot segment id", "/user/./{B}/tree?token={tB}", nil, notFound},
		// Paths outside /user/ go to the API router, which redirects them to
		// their clean form; the credentials still have to match there.
		{"leading double slash with A's token", "//user/{B}/tree?token={tA}", nil, "301 then 403"},
		{"leading double slash with B's token", "//user/{B}/tree?token={tB}", nil, "301 then B"},
		{"dotdot into /user/ with A's token", "/x/../user/{B}/tree?token={tA}", nil, "301 then 403"},
		{"id without slash", "/user/{A}?token={tA}", nil, "301 then A"},
		{"id without slash, B's token", "/user/{A}?token={tB}", nil, "301 then 403"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			uri := sub.Replace(tc.uri)
			hs := make([]string, len(tc.headers))
			for i, h := range tc.headers {
				hs[i] = sub.Replace(h)
			}
			res, body := pxRaw(t, d.URL, "GET", uri, hs...)
			want := tc.want
			if via, then, ok := strings.Cut(tc.want, " then "); ok {
				loc := res.Header.Get("Location")
				if res.Status[:3] != via || !strings.HasPrefix(loc, "/user/") {
					t.Fatalf("want %s to /user/…, have %s to %q: %.300s", via, res.Status, loc, body)
				}
				uri, want = loc, then
				res, body = pxRaw(t, d.URL, "GET", uri, hs...)
			}
			a, arrived := pxArrived(body)
			got := res.Status
			if arrived {
				got = pxAnswerer(a, launches)
			}
			switch want {
			case "A", "B":
				if res.StatusCode != 200 || !arrived || got != want {
					t.Fatalf("want launch %s to answer, have %s: %.300s", want, res.Status, body)
				}
				if a.RequestURI != uri {
					t.Errorf("requestURI %q arrived, %q sent", a.RequestURI, uri)
				}
			case forbidden, notFound:
				if arrived || res.Status[:3] != want {
					t.Fatalf("want %s, have %s (launch %s answered): %.300s", want, res.Status, got, body)
				}
				wantName := map[string]string{forbidden: "sessionForbidden", notFound: "sessionNotFound"}[want]
				pxCheckAnswer(t, res, body, strings.Contains(uri, "/api/"), wantName)
			default:
				t.Fatalf("bad case: want %q", want)
			}
		})
	}

	// A websocket upgrade needs the token as much as a page does.
	t.Run("websocket", func(t *testing.T) {
		for _, tc := range []struct {
			name, path, header string
			want               int
		}{
			{"no token", A.Location + "api/kernels/k/channels", "", 403},
			{"B's token", A.Location + "api/kernels/k/channels?token=" + B.Token, "", 403},
			{"B's cookie", A.Location + "api/kernels/k/channels", "Cookie: " + cookieOf["B"], 403},
			{"A's cookie", A.Location + "api/kernels/k/channels", "Cookie: " + cookieOf["A"], 101},
			{"A's header", A.Location + "api/kernels/k/channels", "Authorization: token " + A.Token, 101},
		} {
			h := http.Header{}
			if k, v, ok := strings.Cut(tc.header, ": "); ok {
				h.Set(k, v)
			}
			c, res, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(d.URL, "http")+tc.path, h)
			if c != nil {
				c.Close()
			}
			if res == nil || res.StatusCode != tc.want {
				t.Errorf("%s: want %d, have %v (%v)", tc.name, tc.want, res, err)
			}
		}
	})
}

// pxCheckAnswer checks a proxy error answer: JSON with the given error name
// for API clients (paths under api/), else the HTML page.
func pxCheckAnswer(t testing.TB, res *http.Response, body []byte, apiClient bool, name string) *api.Error {
	t.Helper()
	ct := res.Header.Get("Content-Type")
	if apiClient {
		e, ok := pxProxyError(body)
		if !ok || ct != "application/json" || e.Name != name || e.Status != res.StatusCode {
			t.Fatalf("want JSON %s, have %s %s: %.300s", name, res.Status, ct, body)
		}
		return e
	}
	if !strings.HasPrefix(ct, "text/html") || !strings.Contains(string(body), "nbpool") {
		t.Fatalf("want the HTML page, have %s %s: %.300s", res.Status, ct, body)
	}
	return nil
}

func pxRandomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// randomID is a well-formed launch id that no launch has.
func pxRandomID(t testing.TB) string {
	t.Helper()
	const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 22)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = base62[int(b[i])%len(base62)]
	}
	return string(b)
}

// Done when 5: unknown and ended ids get the "session ended" page (404,
// HTML, a relaunch link: /spawn/fake when the id was a fake launch, the
// start page when it never existed) and sessionNotFound as JSON for API
// clients; a stopped launch's route is gone as soon as the stop call
// returns, and its open websockets are closed.
func TestProxyEndedSessions(t *testing.T) {
	d := pxStart(t, 1, false)
	ctx := context.Background()

	check := func(t *testing.T, id, wantLink string) {
		t.Helper()
		res, body := pxRaw(t, d.URL, "GET", "/user/"+id+"/tree", "Accept: text/html")
		if res.StatusCode != 404 {
			t.Fatalf("page: %s", res.Status)
		}
		pxCheckAnswer(t, res, body, false, "")
		page := string(body)
		if !strings.Contains(page, "has ended") || !strings.Contains(page, `href="`+wantLink+`"`) {
			t.Errorf("page lacks the ended message or the link %s:\n%s", wantLink, page)
		}
		for _, req := range []struct{ uri, accept string }{
			{"/user/" + id + "/api/contents", ""},
			{"/user/" + id + "/tree", "Accept: application/json"},
		} {
			res, body := pxRaw(t, d.URL, "GET", req.uri, req.accept)
			if res.StatusCode != 404 {
				t.Fatalf("%s: %s", req.uri, res.Status)
			}
			e := pxCheckAnswer(t, res, body, true, "sessionNotFound")
			if !strings.Contains(strings.Join(e.Suggestions, " "), wantLink) {
				t.Errorf("%s: suggestions %q lack %s", req.uri, e.Suggestions, wantLink)
			}
		}
	}

	t.Run("unknown", func(t *testing.T) { check(t, pxRandomID(t), "/") })

	t.Run("stopped", func(t *testing.T) {
		l := pxSpawn(t, d.Client)
		wsURL := "ws" + strings.TrimPrefix(d.URL, "http") + l.Location + "api/kernels/k/channels" + pxQuery(l.Token)
		ws, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		if res, _ := pxRaw(t, d.URL, "GET", l.Location+"tree"+pxQuery(l.Token)); res.StatusCode != 200 {
			t.Fatalf("before the stop: %s", res.Status)
		}
		if _, err := d.Client.StopLaunch(ctx, pxBinding, l.ID); err != nil {
			t.Fatal(err)
		}
		// No wait: the route must be gone when the stop call has returned.
		res, body := pxRaw(t, d.URL, "GET", l.Location+"tree"+pxQuery(l.Token))
		if res.StatusCode != 404 {
			t.Fatalf("right after the stop: %s %.300s", res.Status, body)
		}
		check(t, l.ID, "/spawn/"+pxBinding)
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := ws.ReadMessage(); err == nil || pxIsTimeout(err) {
			t.Errorf("the websocket of a stopped launch stays open: %v", err)
		}
	})
}

func pxIsTimeout(err error) bool {
	t, ok := err.(interface{ Timeout() bool })
	return ok && t.Timeout()
}
