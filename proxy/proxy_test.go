package proxy

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func decodeEcho(t *testing.T, body []byte) echo {
	t.Helper()
	var e echo
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("backend answer is not an echo: %v\n%s", err, body)
	}
	return e
}

// TestForwarding: path and query byte for byte, Host, Origin, cookies and
// Authorization as sent; X-Forwarded-* set by the proxy, not the client.
func TestForwarding(t *testing.T) {
	f := newFixture(t, Options{})
	uris := []string{
		"/user/" + idA + "/notebooks/foo%20bar/%C3%BC.ipynb",
		"/user/" + idA + "/api/contents/a%2Fb",
		"/user/" + idA + "/api/contents/a%2fb%3F?type=file&content=1",
		"/user/" + idA + "/files/a//b/./c/../d.txt?x=%2F&y=a+b",
		"/user/" + idA + "/",
	}
	for _, uri := range uris {
		res, body := f.raw(t, "GET", uri,
			"Host: notebooks.example.org",
			"Origin: https://notebooks.example.org",
			"Authorization: token "+f.ra.Token,
			"Cookie: _xsrf=abc; username-x=y",
			"X-Forwarded-For: 6.6.6.6",
			"X-Forwarded-Host: evil.example",
			"Forwarded: for=6.6.6.6",
		)
		if res.StatusCode != 200 {
			t.Fatalf("%s: status %d\n%s", uri, res.StatusCode, body)
		}
		e := decodeEcho(t, body)
		check := func(what, got, want string) {
			t.Helper()
			if got != want {
				t.Errorf("%s: %s %q, want %q", uri, what, got, want)
			}
		}
		check("RequestURI", e.RequestURI, uri)
		check("Host", e.Host, "notebooks.example.org")
		check("Origin", strings.Join(e.Header["Origin"], ","), "https://notebooks.example.org")
		check("Authorization", strings.Join(e.Header["Authorization"], ","), "token "+f.ra.Token)
		check("X-Forwarded-For", strings.Join(e.Header["X-Forwarded-For"], ","), "127.0.0.1")
		check("X-Forwarded-Host", strings.Join(e.Header["X-Forwarded-Host"], ","), "notebooks.example.org")
		check("X-Forwarded-Proto", strings.Join(e.Header["X-Forwarded-Proto"], ","), "http")
		check("Forwarded", strings.Join(e.Header["Forwarded"], ","), "")
		check("cookie _xsrf", e.Cookies["_xsrf"], "abc")
		check("cookie username-x", e.Cookies["username-x"], "y")
	}

	// The backend's own cookies reach the client.
	res, _ := f.raw(t, "GET", "/user/"+idA+"/setcookie?token="+f.ra.Token)
	var xsrf bool
	for _, c := range res.Cookies() {
		xsrf = xsrf || c.Name == "_xsrf" && c.Value == "xsrf-A"
	}
	if !xsrf {
		t.Errorf("backend cookie lost: %v", res.Header["Set-Cookie"])
	}
}

// TestActivityHTTP: a request advances LastActivity; ActivitySince returns
// only the routes that changed.
func TestActivityHTTP(t *testing.T) {
	f := newFixture(t, Options{})
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	f.p.Touch(idA, old)
	f.p.Touch(idB, old)
	if got, ok := f.p.LastActivity(idA); !ok || !got.Equal(old) {
		t.Fatalf("LastActivity after Touch: %v %v", got, ok)
	}
	mark := time.Now()
	if res, _ := f.raw(t, "GET", "/user/"+idA+"/tree?token="+f.ra.Token); res.StatusCode != 200 {
		t.Fatal(res.Status)
	}
	if got, _ := f.p.LastActivity(idA); !got.After(mark) {
		t.Errorf("LastActivity %v not after %v", got, mark)
	}
	since := f.p.ActivitySince(mark)
	if _, ok := since[idA]; !ok || len(since) != 1 {
		t.Errorf("ActivitySince = %v, want only %s", since, idA)
	}
	// A refused request is no activity.
	f.raw(t, "GET", "/user/"+idB+"/tree")
	if got, _ := f.p.LastActivity(idB); !got.Equal(old) {
		t.Errorf("forbidden request moved LastActivity to %v", got)
	}

	// Unknown ids, Add, replace and Remove.
	f.p.Touch("NoSuchNoSuchNoSuch", old)
	if _, ok := f.p.LastActivity("NoSuchNoSuchNoSuch"); ok || f.p.Has("NoSuchNoSuchNoSuch") {
		t.Error("Touch created a route")
	}
	f.p.Add(Route{ID: idB, Binding: "beta", Target: f.b.addr(), Token: "other"})
	if got, _ := f.p.LastActivity(idB); !got.Equal(old) || f.p.Len() != 2 {
		t.Errorf("replace: LastActivity %v, Len %d", got, f.p.Len())
	}
	f.p.Remove(idB)
	if f.p.Has(idB) || f.p.Len() != 1 {
		t.Errorf("after Remove: Has %v, Len %d", f.p.Has(idB), f.p.Len())
	}
	f.p.Remove(idB)
	before := time.Now()
	f.p.Add(f.rb)
	if got, _ := f.p.LastActivity(idB); got.Before(before) {
		t.Errorf("new route starts at %v, before %v", got, before)
	}
}

// TestEventStream: server-sent events arrive one by one, not when the
// response ends.
func TestEventStream(t *testing.T) {
	f := newFixture(t, Options{})
	req, _ := http.NewRequest("GET", f.srv.URL+"/user/"+idA+"/events", nil)
	req.Header.Set("Authorization", "token "+f.ra.Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if sc.Text() != "" {
				lines <- sc.Text()
			}
		}
		close(lines)
	}()
	for i, want := range []string{"data: one", "data: two"} {
		select {
		case got := <-lines:
			if got != want {
				t.Fatalf("event %d: %q, want %q", i, got, want)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("event %d did not arrive before the next was sent: buffered", i)
		}
		f.a.sseNext <- struct{}{}
	}
}
