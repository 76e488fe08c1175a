package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestClientBindings(t *testing.T) {
	d := newFakeDaemon(t)
	c := NewClient(d.srv.URL+"/", testToken)
	ctx := context.Background()

	b, err := c.CreateBinding(ctx, Binding{Name: "new", Image: "img"})
	if err != nil || b.Name != "new" {
		t.Fatalf("CreateBinding: %+v, %v", b, err)
	}
	if _, err := c.CreateBinding(ctx, Binding{Name: "new", Image: "img"}); !ErrBindingExists.Is(err) {
		t.Fatalf("CreateBinding twice: %v, want bindingExists", err)
	}
	if b, err := c.GetBinding(ctx, "new"); err != nil || b.Image != "img" {
		t.Fatalf("GetBinding: %+v, %v", b, err)
	}
	l, err := c.ListBindings(ctx)
	if err != nil || len(l.Items) != 2 {
		t.Fatalf("ListBindings: %+v, %v", l, err)
	}
	for name, want := range map[string]bool{"new": true, "nope": false} {
		if ok, err := c.BindingExists(ctx, name); err != nil || ok != want {
			t.Errorf("BindingExists(%s) = %v, %v; want %v", name, ok, err, want)
		}
	}
	if _, st, err := c.PutBinding(ctx, Binding{Name: "new", Image: "img2"}); err != nil || st != 200 {
		t.Errorf("PutBinding existing: %d, %v; want 200", st, err)
	}
	if _, st, err := c.PutBinding(ctx, Binding{Name: "newer", Image: "img"}); err != nil || st != 201 {
		t.Errorf("PutBinding new: %d, %v; want 201", st, err)
	}
	if err := c.DeleteBinding(ctx, "new", false); !ErrBindingInUse.Is(err) {
		t.Errorf("DeleteBinding without force: %v, want bindingInUse", err)
	}
	if err := c.DeleteBinding(ctx, "new", true); err != nil || d.lastQuery() != "DELETE /api/bindings/new?force=true" {
		t.Errorf("DeleteBinding with force: %v, sent %s", err, d.lastQuery())
	}
}

func TestClientErrorAnswers(t *testing.T) {
	d := newFakeDaemon(t)
	ctx := context.Background()
	c := NewClient(d.srv.URL, testToken)

	_, err := c.GetBinding(ctx, "nope")
	var ae *Error
	if !errors.As(err, &ae) || ae.Name != "bindingNotFound" || ae.Status != 404 ||
		ae.Message != `no binding named "nope"` || len(ae.Suggestions) != 2 {
		t.Fatalf("GetBinding(nope) = %#v", err)
	}
	if !errors.Is(err, ErrBindingNotFound.New()) {
		t.Error("errors.Is does not match the spec's error")
	}
	if _, err := NewClient(d.srv.URL, "wrong").CreateBinding(ctx, Binding{Name: "x"}); !ErrUnauthorized.Is(err) {
		t.Errorf("wrong token: %v, want unauthorized", err)
	}
	if _, err := NewClient(d.srv.URL, "").SetPool(ctx, "fake", PoolUpdate{}); !ErrUnauthorized.Is(err) {
		t.Errorf("no token: %v, want unauthorized", err)
	}
	if _, err := c.Launch(ctx, "fake", "gone"); !ErrLaunchNotFound.Is(err) {
		t.Errorf("Launch(gone): %v, want launchNotFound", err)
	}

	d.full = true
	_, err = c.TmpnbSpawn(ctx, TmpnbSpawnRequest{})
	if !errors.As(err, &ae) || ae.Name != "full" || ae.Status != 429 || ae.RetryAfter != 3 {
		t.Errorf("TmpnbSpawn when full: %#v, want full with Retry-After 3", err)
	}
}

func TestClientLaunchesPoolsOps(t *testing.T) {
	d := newFakeDaemon(t)
	ctx := context.Background()
	c := NewClient(d.srv.URL, testToken)

	if l, st, err := c.Spawn(ctx, "fake", SpawnRequest{Path: "lab"}); err != nil || st != 201 || l.URL != "/user/warm1/lab?token=t" {
		t.Errorf("warm Spawn: %+v, %d, %v", l, st, err)
	}
	if l, st, err := c.Spawn(ctx, "fake", SpawnRequest{Path: "cold"}); err != nil || st != 202 || l.State != StateWarming {
		t.Errorf("cold Spawn: %+v, %d, %v", l, st, err)
	}
	if _, _, err := c.Spawn(ctx, "nope", SpawnRequest{}); !ErrBindingNotFound.Is(err) {
		t.Errorf("Spawn on a missing binding: %v", err)
	}
	if l, err := c.Launch(ctx, "fake", "abc"); err != nil || l.ID != "abc" {
		t.Errorf("Launch: %+v, %v", l, err)
	}
	if l, err := c.StopLaunch(ctx, "fake", "abc"); err != nil || l.State != StateEnded {
		t.Errorf("StopLaunch: %+v, %v", l, err)
	}
	if l, err := c.ListLaunches(ctx, "fake", "ended"); err != nil || len(l.Items) != 1 || d.lastQuery() != "GET /api/binders/fake?state=ended" {
		t.Errorf("ListLaunches: %+v, %v, sent %s", l, err, d.lastQuery())
	}
	if p, err := c.ListPools(ctx); err != nil || len(p.Items) != 1 {
		t.Errorf("ListPools: %+v, %v", p, err)
	}
	if p, err := c.GetPool(ctx, "fake"); err != nil || p.MinPool != 2 {
		t.Errorf("GetPool: %+v, %v", p, err)
	}
	size := 7
	if p, err := c.SetPool(ctx, "fake", PoolUpdate{MinPool: &size}); err != nil || p.MinPool != 7 {
		t.Errorf("SetPool: %+v, %v", p, err)
	}
	if r, err := c.TmpnbSpawn(ctx, TmpnbSpawnRequest{}); err != nil || r.URL == "" {
		t.Errorf("TmpnbSpawn: %+v, %v", r, err)
	}
	if s, err := c.Stats(ctx); err != nil || s.Capacity != 10 {
		t.Errorf("Stats: %+v, %v", s, err)
	}
	if v, err := c.ServerVersion(ctx); err != nil || v.Version != "test" {
		t.Errorf("ServerVersion: %+v, %v", v, err)
	}
	if h, err := c.Health(ctx); err != nil || h.Status != "ok" {
		t.Errorf("Health: %+v, %v", h, err)
	}
	d.degraded = true
	if h, err := c.Health(ctx); err != nil || h.Status != "degraded" || h.Checks["engine"].Message != "down" {
		t.Errorf("degraded Health: %+v, %v; want the checks, no error", h, err)
	}
}

func TestClientDo(t *testing.T) {
	d := newFakeDaemon(t)
	ctx := context.Background()
	c := NewClient(d.srv.URL, testToken)

	if _, err := c.Do(ctx, "bindings.nope", nil, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "no endpoint") {
		t.Errorf("unknown endpoint: %v", err)
	}
	if _, err := c.Do(ctx, "bindings.get", nil, nil, nil, nil); err == nil || !strings.Contains(err.Error(), `"name"`) {
		t.Errorf("missing path parameter: %v", err)
	}
	if _, err := c.Do(ctx, "bindings.get", map[string]string{"name": "x", "id": "y"}, nil, nil, nil); err == nil {
		t.Error("an unknown path parameter is accepted")
	}
	// Path parameters are escaped: "a b/c" stays one segment.
	st, err := c.Do(ctx, "bindings.get", map[string]string{"name": "a b/c"}, nil, nil, nil)
	if !ErrBindingNotFound.Is(err) || st != 404 || d.lastQuery() != "GET /api/bindings/a%20b%2Fc?" {
		t.Errorf("escaped name: %d, %v, sent %s", st, err, d.lastQuery())
	}
	var out TmpnbSpawn
	if st, err := c.Do(ctx, "tmpnb.spawn", nil, nil, struct{}{}, &out); err != nil || st != 200 || out.URL == "" {
		t.Errorf("Do tmpnb.spawn: %d, %v, %+v", st, err, out)
	}
	if st, err := c.Do(ctx, "bindings.delete", map[string]string{"name": "fake"}, map[string][]string{"force": {"true"}}, nil, &out); err != nil || st != 204 {
		t.Errorf("Do with a 204 answer and an out: %d, %v", st, err)
	}
}

func TestClientBadResponse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"error page", 502, "<html>Bad Gateway</html>", "Bad Gateway"},
		{"error of another shape", 404, `{"detail": "Not Found"}`, "detail"},
		{"success that is not JSON", 200, "hello", "not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			_, err := NewClient(srv.URL, "").GetBinding(context.Background(), "fake")
			var ae *Error
			if !errors.As(err, &ae) || ae.Name != "badResponse" || ae.Status != tc.status || !strings.Contains(ae.Message, tc.want) {
				t.Fatalf("err = %#v, want badResponse %d mentioning %q", err, tc.status, tc.want)
			}
		})
	}
}

func TestClientRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = NewClient("http://"+addr, "").ListBindings(context.Background())
	if !ErrRefused.Is(err) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("closed port: %v, want refused wrapping ECONNREFUSED", err)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("message %q does not name the address", err)
	}

	// A name that does not resolve is refused too.
	c := NewClient("http://nbpool.invalid", "")
	c.HTTP.Transport = &http.Transport{DialContext: func(ctx context.Context, _, host string) (net.Conn, error) {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}}
	if _, err := c.ListBindings(context.Background()); !ErrRefused.Is(err) {
		t.Fatalf("no such host: %v, want refused", err)
	}
}

func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := NewClient(srv.URL, "").ListBindings(ctx)
	if !ErrTimeout.Is(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("context deadline: %v, want timeout wrapping DeadlineExceeded", err)
	}

	c := NewClient(srv.URL, "")
	c.HTTP.Timeout = 50 * time.Millisecond
	if _, err := c.ListBindings(context.Background()); !ErrTimeout.Is(err) {
		t.Fatalf("http.Client timeout: %v, want timeout", err)
	}

	// Cut off in the middle of the answer.
	partial := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"items": [`)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer partial.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := NewClient(partial.URL, "").ListBindings(ctx); !ErrTimeout.Is(err) {
		t.Fatalf("deadline while reading the answer: %v, want timeout", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err = NewClient(srv.URL, "").ListBindings(ctx)
	if !errors.Is(err, context.Canceled) || ErrTimeout.Is(err) || ErrRefused.Is(err) {
		t.Fatalf("cancelled: %v, want context.Canceled only", err)
	}
}

func TestClientEvents(t *testing.T) {
	d := newFakeDaemon(t)
	c := NewClient(d.srv.URL, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var phases []string
	err := c.Events(ctx, "fake", "cold1", func(ev Event) error {
		phases = append(phases, ev.Phase+"/"+ev.Message)
		return nil
	})
	if err != nil || strings.Join(phases, " ") != "creating/Creating probing/Probing ready/" {
		t.Fatalf("Events: %v, %v; want the three events, ending at ready", phases, err)
	}

	phases = nil
	if err := c.Events(ctx, "fake", "short", func(ev Event) error { phases = append(phases, ev.Phase); return nil }); err != nil || len(phases) != 2 {
		t.Errorf("a stream ending early: %v, %v", phases, err)
	}

	stop := errors.New("stop")
	if err := c.Events(ctx, "fake", "cold1", func(Event) error { return stop }); err != stop {
		t.Errorf("fn's error: %v, want it as is", err)
	}

	if err := c.Events(ctx, "fake", "gone", func(Event) error { return nil }); !ErrLaunchNotFound.Is(err) {
		t.Errorf("missing launch: %v, want launchNotFound", err)
	}

	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	n := 0
	err = c.Events(short, "fake", "hang", func(Event) error { n++; return nil })
	if n != 1 || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hanging stream: %d events, %v; want 1 and the deadline", n, err)
	}
}

func TestReadEvents(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"plain", "data: a\n\ndata: b\n\n", []string{"a", "b"}},
		{"crlf and comments", ": hi\r\ndata: a\r\n\r\n:keepalive\r\n\r\n", []string{"a"}},
		{"multi-line", "data: a\ndata:b\nevent: x\nid: 1\n\n", []string{"a\nb"}},
		{"last event without blank line", "data: a\n\ndata: b", []string{"a", "b"}},
		{"only comments", ": x\n\n: y\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := readEvents(strings.NewReader(tc.in), func(data string) (bool, error) {
				got = append(got, data)
				return true, nil
			})
			if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
