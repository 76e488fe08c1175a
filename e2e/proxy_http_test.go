package e2e

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Done when 4: notebook paths with encoded slashes, spaces, non-ASCII and
// other reserved characters arrive at the container byte for byte as the
// client sent them, with the Host and Origin the client sent, Jupyter's own
// cookies, and X-Forwarded-For/Proto/Host set by the daemon (a client's own
// X-Forwarded-For is not believed).
func TestProxyPaths(t *testing.T) {
	d := pxStart(t, 1, false)
	l := pxSpawn(t, d.Client)
	q := pxQuery(l.Token)

	for _, rest := range []string{
		"notebooks/foo%20bar/%C3%BC.ipynb",
		"api/contents/a%2Fb",
		"api/contents/a%2fb%2F..%2Fc",
		"notebooks/%E6%97%A5%E6%9C%AC%E8%AA%9E/na%C3%AFve%20caf%C3%A9.ipynb",
		"tree/a+b/c%2Bd/100%25/%7Euser",
		"files/x;y=z/%3Bsemi/%3F%23q.txt",
		"edit/it's%20(1)!/*$@:&=,.txt",
		"api/contents/a//b/./c/../d",
		"tree/",
		"",
	} {
		uri := l.Location + rest + q + "&x=%2F%20+%C3%BC&y"
		t.Run(rest, func(t *testing.T) {
			res, body := pxRaw(t, d.URL, "GET", uri)
			a, ok := pxArrived(body)
			if res.StatusCode != 200 || !ok {
				t.Fatalf("%s: %.300s", res.Status, body)
			}
			if a.RequestURI != uri {
				t.Errorf("sent     %q\narrived  %q", uri, a.RequestURI)
			}
		})
	}

	t.Run("headers", func(t *testing.T) {
		const host, origin = "notebooks.example.org:8443", "https://notebooks.example.org:8443"
		uri := l.Location + "api/contents/a%2Fb" + q
		res, body := pxRaw(t, d.URL, "PUT", uri,
			"Host: "+host,
			"Origin: "+origin,
			"Cookie: _xsrf=2|abc; username-127-0-0-1-8888=\"2|xyz\"",
			"X-XSRFToken: 2|abc",
			"X-Forwarded-For: 6.6.6.6",
			"X-Forwarded-Host: evil.example",
			"Forwarded: for=6.6.6.6",
			"Content-Length: 0",
		)
		a, ok := pxArrived(body)
		if res.StatusCode != 200 || !ok {
			t.Fatalf("%s: %.300s", res.Status, body)
		}
		h := a.Headers
		for _, c := range []struct{ what, have, want string }{
			{"method", a.Method, "PUT"},
			{"requestURI", a.RequestURI, uri},
			{"Host", a.Host, host},
			{"Origin", h.Get("Origin"), origin},
			{"X-XSRFToken", h.Get("X-Xsrftoken"), "2|abc"},
			{"Cookie", strings.Join(a.Cookies, "; "), `_xsrf=2|abc; username-127-0-0-1-8888=2|xyz`},
			{"X-Forwarded-For", strings.Join(h.Values("X-Forwarded-For"), ","), "127.0.0.1"},
			{"X-Forwarded-Proto", h.Get("X-Forwarded-Proto"), "http"},
			{"X-Forwarded-Host", h.Get("X-Forwarded-Host"), host},
			{"Forwarded", h.Get("Forwarded"), ""},
		} {
			if c.have != c.want {
				t.Errorf("%s: arrived %q, want %q", c.what, c.have, c.want)
			}
		}
	})
}

// Done when 6 (issue scope): server-sent events come through one by one,
// each as soon as fakenb flushes it: event k is read before event k+1 has
// been sent.
func TestProxyEventStream(t *testing.T) {
	d := pxStart(t, 1, false)
	l := pxSpawn(t, d.Client)
	const n, interval = 4, 600 * time.Millisecond
	req, _ := http.NewRequest("GET", d.URL+l.Location+"events?n=4&interval=600ms", nil)
	req.Header.Set("Authorization", "token "+l.Token)
	req.Header.Set("Accept", "text/event-stream")
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" || res.ContentLength != -1 {
		t.Fatalf("%s, Content-Type %q, length %d", res.Status, res.Header.Get("Content-Type"), res.ContentLength)
	}
	sc := bufio.NewScanner(res.Body)
	for k := 0; k < n; k++ {
		var data string
		for sc.Scan() && sc.Text() != "" {
			data = sc.Text()
		}
		at := time.Since(start)
		if want := `data: {"i": ` + string(rune('0'+k)) + `}`; data != want {
			t.Fatalf("event %d: %q, want %q (%v)", k, data, want, sc.Err())
		}
		// fakenb sends event k at k*interval; event k+1 goes out at
		// (k+1)*interval, so k must be here before that.
		if at >= time.Duration(k+1)*interval {
			t.Errorf("event %d arrived after %v, when event %d had been sent", k, at.Round(time.Millisecond), k+1)
		}
		t.Logf("event %d after %v", k, at.Round(time.Millisecond))
	}
	if sc.Scan() {
		t.Errorf("more after %d events: %q", n, sc.Text())
	}
}
