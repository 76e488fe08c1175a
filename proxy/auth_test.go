package proxy

import (
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
)

// TestAccess: only the launch named in the path opens, and only with its
// token, through each channel; path tricks never reach another launch.
func TestAccess(t *testing.T) {
	f := newFixture(t, Options{})
	tA, tB := f.ra.Token, f.rb.Token
	cookieA := "Cookie: " + CookieName + "=" + tA
	lowerB := strings.ToLower(idB)

	tests := []struct {
		name, method, uri string
		header            []string
		status            int
		backend           string // who must answer; "" for the proxy itself
		setsCookie        bool
	}{
		{"no token", "GET", "/user/" + idA + "/tree", nil, 403, "", false},
		{"wrong query token", "GET", "/user/" + idA + "/tree?token=nope", nil, 403, "", false},
		{"query token", "GET", "/user/" + idA + "/tree?token=" + tA, nil, 200, "A", true},
		{"query token among others", "GET", "/user/" + idA + "/tree?a=1&token=" + tA + "&b=2", nil, 200, "A", true},
		{"header token", "GET", "/user/" + idA + "/api/contents", []string{"Authorization: token " + tA}, 200, "A", false},
		{"header bearer", "GET", "/user/" + idA + "/api/contents", []string{"Authorization: Bearer " + tA}, 200, "A", false},
		{"header other launch", "GET", "/user/" + idA + "/api/contents", []string{"Authorization: token " + tB}, 403, "", false},
		{"header other scheme", "GET", "/user/" + idA + "/", []string{"Authorization: Basic " + tA}, 403, "", false},
		{"cookie", "GET", "/user/" + idA + "/tree", []string{cookieA}, 200, "A", false},
		{"cookie and query", "GET", "/user/" + idA + "/tree?token=" + tA, []string{cookieA}, 200, "A", false},
		{"cookie among others", "GET", "/user/" + idA + "/tree", []string{"Cookie: _xsrf=1; " + CookieName + "=x; " + CookieName + "=" + tA}, 200, "A", false},
		{"cookie of A on B", "GET", "/user/" + idB + "/tree", []string{cookieA}, 403, "", false},
		{"token of A on B", "GET", "/user/" + idB + "/tree?token=" + tA, nil, 403, "", false},
		{"dot segments stay on A", "GET", "/user/" + idA + "/../" + idB + "/?token=" + tA, nil, 200, "A", true},
		{"dot segments with B's token", "GET", "/user/" + idA + "/../" + idB + "/?token=" + tB, nil, 403, "", false},
		{"encoded slashes A's token", "GET", "/user/" + idA + "%2F..%2F" + idB + "/?token=" + tA, nil, 404, "", false},
		{"encoded slashes B's token", "GET", "/user/" + idA + "%2F..%2F" + idB + "/?token=" + tB, nil, 404, "", false},
		{"double slash before user", "GET", "//user/" + idB + "/?token=" + tB, nil, 404, "", false},
		{"empty id", "GET", "/user//" + idB + "/?token=" + tB, nil, 404, "", false},
		{"encoded id", "GET", "/user/%42" + idB[1:] + "/?token=" + tB, nil, 404, "", false},
		{"no trailing slash", "GET", "/user/" + idB + "?token=" + tB, nil, 301, "", false},
		{"lower-case id", "GET", "/user/" + lowerB + "/?token=" + tB, nil, 404, "", false},
		{"CORS preflight passes to the backend", "OPTIONS", "/user/" + idA + "/api/kernels",
			[]string{"Origin: https://thebe.example", "Access-Control-Request-Method: POST"}, 200, "A", false},
		{"plain OPTIONS needs the token", "OPTIONS", "/user/" + idA + "/api/kernels", nil, 403, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, body := f.raw(t, tc.method, tc.uri, tc.header...)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d\n%s", res.StatusCode, tc.status, body)
			}
			if got := res.Header.Get("X-Backend"); got != tc.backend {
				t.Fatalf("answered by backend %q, want %q", got, tc.backend)
			}
			if tc.backend != "" {
				e := decodeEcho(t, body)
				if e.RequestURI != tc.uri {
					t.Errorf("backend got %q, want %q", e.RequestURI, tc.uri)
				}
			}
			var ours *http.Cookie
			for _, c := range res.Cookies() {
				if c.Name == CookieName {
					ours = c
				}
			}
			if (ours != nil) != tc.setsCookie {
				t.Fatalf("cookie set: %v, want %v", ours != nil, tc.setsCookie)
			}
			if ours != nil {
				if ours.Value != tA || ours.Path != "/user/"+idA+"/" || !ours.HttpOnly ||
					ours.SameSite != http.SameSiteLaxMode || ours.Secure {
					t.Errorf("cookie %s", ours)
				}
			}
			if tc.status == 301 {
				if loc := res.Header.Get("Location"); loc != "/user/"+idB+"/?token="+tB {
					t.Errorf("Location %q", loc)
				}
			}
		})
	}
}

// TestAccessCookieJar: a browser that opened launch A with its token keeps
// opening A without it, and its cookie does not open B.
func TestAccessCookieJar(t *testing.T) {
	f := newFixture(t, Options{})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func(path string) *http.Response {
		t.Helper()
		res, err := c.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res := get("/user/" + idA + "/tree?token=" + f.ra.Token); res.StatusCode != 200 {
		t.Fatalf("with token: %d", res.StatusCode)
	}
	if res := get("/user/" + idA + "/api/contents"); res.StatusCode != 200 || res.Header.Get("X-Backend") != "A" {
		t.Fatalf("with cookie: %d %q", res.StatusCode, res.Header.Get("X-Backend"))
	}
	if res := get("/user/" + idB + "/tree"); res.StatusCode != 403 {
		t.Fatalf("A's cookie on B: %d", res.StatusCode)
	}
}

// TestSecureCookie: the cookie is Secure when a trusted front proxy says
// https, and only then.
func TestSecureCookie(t *testing.T) {
	for _, trust := range []bool{false, true} {
		f := newFixture(t, Options{TrustForwardedProto: trust})
		res, body := f.raw(t, "GET", "/user/"+idA+"/?token="+f.ra.Token, "X-Forwarded-Proto: https")
		if res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
		cs := res.Cookies()
		if len(cs) != 1 || cs[0].Secure != trust {
			t.Errorf("trust=%v: cookies %v", trust, cs)
		}
		wantProto := map[bool]string{false: "http", true: "https"}[trust]
		if got := decodeEcho(t, body).Header["X-Forwarded-Proto"]; len(got) != 1 || got[0] != wantProto {
			t.Errorf("trust=%v: backend X-Forwarded-Proto %v, want %s", trust, got, wantProto)
		}
	}
}
