package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon/daemontest"
	"github.com/nbpool/nbpool/engine"
	"github.com/nbpool/nbpool/pool"
	"github.com/nbpool/nbpool/proxy"
	"github.com/nbpool/nbpool/store"
	"github.com/nbpool/nbpool/web"
)

const admin = "conformance-admin"

// stack is the daemon's parts wired by hand, so the test can reach the
// pool manager and the store to provoke the errors a request alone cannot.
type stack struct {
	url   string
	pools *pool.Manager
	store *store.Store
}

func newStack(t *testing.T) *stack {
	daemontest.RequireEngine(t)
	ctx, cancel := context.WithCancel(context.Background())
	instance := fmt.Sprintf("t-conf-%d", time.Now().UnixNano()%1e6)
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "nbpool.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(ctx, engine.Options{Instance: instance, Network: daemontest.Network, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.EnsureNetwork(ctx); err != nil {
		t.Fatal(err)
	}
	px := proxy.New(proxy.Options{Log: zerolog.Nop()})
	mgr := pool.New(ctx, pool.Options{Engine: eng, Store: st, Router: px, Log: zerolog.Nop(), Instance: instance, Capacity: 4,
		Backoff: time.Minute}) // a failed binding stays backed off for the whole test

	fake := daemontest.FakeBinding("fake", 1)
	cold := daemontest.FakeBinding("cold", 0)
	ghost := daemontest.FakeBinding("ghost", 1)
	ghost.Image = "nbpool-test/does-not-exist:latest"
	dud := daemontest.FakeBinding("dud", 0) // listens where nbpool does not probe
	dud.Command = []string{"/fakenb", "--port=9999", "--base-url={base_url}", "--token={token}"}
	dud.Readiness.Timeout = api.Duration(time.Second)
	for _, b := range []api.Binding{fake, cold, ghost, dud} {
		if _, _, err := st.PutBinding(ctx, b); err != nil {
			t.Fatal(err)
		}
		mgr.SetBinding(ctx, b, b.Pool)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Run(ctx) }()
	srv, err := web.New(web.Options{Log: zerolog.Nop(), Pools: mgr, Store: st, Proxy: px, Engine: eng,
		AdminToken: admin, SpawnAuth: "open", DefaultBinding: "fake", SpawnWait: time.Second,
		Version: api.Version{Version: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		cancel()
		<-done
		daemontest.RemoveInstance(t, instance)
		eng.Close()
		st.Close()
	})
	return &stack{url: hs.URL, pools: mgr, store: st}
}

// answer is what a request got: its status, the error name (or "" for a
// success) and the body.
type answer struct {
	status int
	name   string
	body   string
}

func (s *stack) do(t *testing.T, ep api.Endpoint, method, path, body, token string) answer {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "token "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, body: string(raw)}
	if resp.StatusCode < 400 {
		return a
	}
	switch {
	case method == http.MethodHead:
		// No body: the status names the error among the endpoint's own.
		if errs := ep.ErrorsWithStatus(resp.StatusCode); len(errs) > 0 {
			a.name = errs[0].Name
		}
	case ep.Compat && resp.StatusCode == http.StatusTooManyRequests:
		var full api.TmpnbFull
		if json.Unmarshal(raw, &full) == nil && full.Status == "full" {
			a.name = api.ErrFull.Name
		}
	default:
		var eb api.ErrorBody
		if json.Unmarshal(raw, &eb) != nil || eb.Error == nil {
			t.Fatalf("%s %s: %d without the error shape: %s", method, path, resp.StatusCode, raw)
		}
		if eb.Error.Status != resp.StatusCode || len(eb.Error.Suggestions) == 0 {
			t.Fatalf("%s %s: error %+v disagrees with status %d or has no suggestions", method, path, eb.Error, resp.StatusCode)
		}
		a.name = eb.Error.Name
	}
	return a
}

// TestCatalogConformance walks the catalog: every endpoint is routed, in the
// OpenAPI document and on the docs page; every declared error is produced by
// a request of the table below, and no response carries an undeclared one.
func TestCatalogConformance(t *testing.T) {
	s := newStack(t)
	eps := map[string]api.Endpoint{}
	for _, ep := range api.Endpoints() {
		eps[ep.Name] = ep
	}
	checkDerived(t, s, eps)

	ctx := context.Background()
	waitFor(t, "fake pool filled", func() bool { p, _ := s.pools.Pool("fake"); return p.Available == 1 })
	waitFor(t, "ghost image failure", func() bool { p, _ := s.pools.Pool("ghost"); return p.Failures > 0 })
	claimed, _, err := s.pools.Claim(ctx, "fake", "")
	if err != nil {
		t.Fatal(err)
	}

	const img = `"image": "nbpool-test/fakenb:latest"`
	produced := map[string]map[string]bool{} // endpoint → error names
	type trigger struct {
		ep, method, path, body, token, want string
		before                              func()
	}
	noRoute := api.Endpoint{Name: "(no route)"}
	triggers := []trigger{
		{ep: "bindings.create", method: "POST", path: "/api/bindings", body: `{"name": "fake", ` + img + `}`, token: admin, want: "bindingExists"},
		{ep: "bindings.create", method: "POST", path: "/api/bindings", body: `{"name": "Bad", ` + img + `}`, token: admin, want: "invalidName"},
		{ep: "bindings.create", method: "POST", path: "/api/bindings", body: `{"name": "x", ` + img + `, "port": 70000}`, token: admin, want: "invalidBinding"},
		{ep: "bindings.create", method: "POST", path: "/api/bindings", body: `{"name": "x", "image": "::"}`, token: admin, want: "invalidImage"},
		{ep: "bindings.create", method: "POST", path: "/api/bindings", body: `{"name": "x", ` + img + `, "pool": {"min": -1}}`, token: admin, want: "invalidPool"},
		{ep: "bindings.create", method: "POST", path: "/api/bindings", body: `{"name": "x", ` + img + `}`, want: "unauthorized"},
		{ep: "bindings.create", method: "POST", path: "/api/bindings", body: `{"name": "x", ` + img + `}`, token: "wrong", want: "unauthorized"},
		{ep: "bindings.create", method: "POST", path: "/api/bindings", body: `{"name": `, token: admin, want: "malformedRequest"},
		{ep: "bindings.create", method: "POST", path: "/api/bindings", body: `{"name": "x", "env": {"A": "` + strings.Repeat("a", 2<<20) + `"}}`, token: admin, want: "tooLarge"},
		{ep: "bindings.get", method: "GET", path: "/api/bindings/nope", want: "bindingNotFound"},
		{ep: "bindings.exists", method: "HEAD", path: "/api/bindings/nope", want: "bindingNotFound"},
		{ep: "bindings.put", method: "PUT", path: "/api/bindings/Bad", body: `{` + img + `}`, token: admin, want: "invalidName"},
		{ep: "bindings.put", method: "PUT", path: "/api/bindings/a", body: `{"name": "b", ` + img + `}`, token: admin, want: "invalidBinding"},
		{ep: "bindings.put", method: "PUT", path: "/api/bindings/a", body: `{"image": "UP::"}`, token: admin, want: "invalidImage"},
		{ep: "bindings.put", method: "PUT", path: "/api/bindings/a", body: `{` + img + `, "pool": {"min": 3, "max": 1}}`, token: admin, want: "invalidPool"},
		{ep: "bindings.delete", method: "DELETE", path: "/api/bindings/nope", token: admin, want: "bindingNotFound"},
		{ep: "bindings.delete", method: "DELETE", path: "/api/bindings/fake", token: admin, want: "bindingInUse"},
		{ep: "binders.spawn", method: "POST", path: "/api/binders/nope", want: "bindingNotFound"},
		{ep: "binders.spawn", method: "POST", path: "/api/binders/ghost", want: "imageUnavailable"},
		{ep: "binders.list", method: "GET", path: "/api/binders/nope", token: admin, want: "bindingNotFound"},
		{ep: "binders.status", method: "GET", path: "/api/binders/fake/nope", want: "launchNotFound"},
		{ep: "binders.events", method: "GET", path: "/api/binders/fake/nope/events", want: "launchNotFound"},
		{ep: "binders.stop", method: "DELETE", path: "/api/binders/fake/nope", token: admin, want: "launchNotFound"},
		{ep: "binders.stop", method: "DELETE", path: "/api/binders/fake/" + claimed.ID, token: "not-its-token", want: "unauthorized"},
		{ep: "pools.get", method: "GET", path: "/api/pools/nope", want: "bindingNotFound"},
		{ep: "pools.set", method: "PUT", path: "/api/pools/nope", body: `{"minPool": 1}`, token: admin, want: "bindingNotFound"},
		{ep: "pools.set", method: "PUT", path: "/api/pools/fake", body: `{"minPool": 9}`, token: admin, want: "invalidPool"},
		{ep: "pools.update", method: "POST", path: "/api/pools/nope", body: `{"minPool": 1}`, token: admin, want: "bindingNotFound"},
		{ep: "pools.update", method: "POST", path: "/api/pools/fake", body: `{"minPool": -2}`, token: admin, want: "invalidPool"},
		{ep: "tmpnb.spawn", method: "POST", path: "/api/spawn/", body: `{"binding": "nope"}`, want: "bindingNotFound"},
		{ep: "tmpnb.spawn", method: "POST", path: "/api/spawn/", body: `{"binding": "ghost"}`, want: "imageUnavailable"},
		{ep: "tmpnb.spawn", method: "POST", path: "/api/spawn/", body: `{"binding": "dud"}`, want: "spawnFailed"},
		// After a failure, dud backs off (for a minute in this test). Under
		// load the wait above may end the launch before it fails by itself,
		// which counts no failure: make sure one is counted.
		{ep: "binders.spawn", method: "POST", path: "/api/binders/dud", want: "spawnFailed", before: func() {
			if p, _ := s.pools.Pool("dud"); p.BackoffUntil.After(time.Now()) {
				return
			}
			if l, cold, err := s.pools.Claim(ctx, "dud", ""); err == nil && cold {
				_, _ = s.pools.Wait(ctx, l.ID)
			}
			waitFor(t, "dud backing off", func() bool { p, _ := s.pools.Pool("dud"); return p.BackoffUntil.After(time.Now()) })
		}},
		{ep: "(no route)", method: "GET", path: "/api/nope", want: "routeNotFound"},
		{ep: "(no route)", method: "DELETE", path: "/api/stats", want: "routeNotFound"},
		{ep: "binders.spawn", method: "POST", path: "/api/binders/cold", want: "engineUnavailable",
			before: func() { s.pools.SetEngineError(fmt.Errorf("%w: test", engine.ErrUnavailable)) }},
		// Fill the capacity (4): the claimed one, the refill, two cold starts.
		{ep: "binders.spawn", method: "POST", path: "/api/binders/cold", want: "full", before: func() {
			s.pools.SetEngineError(nil)
			for range 2 {
				if _, _, err := s.pools.Claim(ctx, "cold", ""); err != nil {
					t.Fatalf("filling the capacity: %v", err)
				}
			}
			waitFor(t, "capacity reached", func() bool { return s.pools.Live() == 4 })
		}},
		{ep: "tmpnb.spawn", method: "POST", path: "/api/spawn/", body: `{"binding": "cold"}`, want: "full"},
		{ep: "binders.spawn", method: "POST", path: "/api/binders/fake", want: "shuttingDown",
			before: func() { s.pools.Close() }},
		{ep: "bindings.list", method: "GET", path: "/api/bindings", want: "internal",
			before: func() { s.store.Close() }},
	}
	for _, tr := range triggers {
		if tr.before != nil {
			tr.before()
		}
		ep, ok := eps[tr.ep]
		if !ok {
			ep = noRoute
		}
		a := s.do(t, ep, tr.method, tr.path, tr.body, tr.token)
		if a.name != tr.want {
			t.Errorf("%s %s (%s): want %s, have %d %q %s", tr.method, tr.path, tr.ep, tr.want, a.status, a.name, a.body)
			continue
		}
		if ok && !ep.AllowsError(a.name) {
			t.Errorf("%s answered %s, which it does not declare", ep.Name, a.name)
		}
		if produced[tr.ep] == nil {
			produced[tr.ep] = map[string]bool{}
		}
		produced[tr.ep][a.name] = true
	}

	// No declared error that cannot happen.
	globals := map[string]bool{}
	for _, errs := range produced {
		for name := range errs {
			globals[name] = true
		}
	}
	for _, g := range api.GlobalErrors() {
		if !globals[g.Name] {
			t.Errorf("global error %s is declared but no request of the table produces it", g.Name)
		}
	}
	for _, ep := range eps {
		for _, e := range ep.Errors {
			if !produced[ep.Name][e.Name] {
				t.Errorf("%s declares %s but no request of the table produces it", ep.Name, e.Name)
			}
		}
	}
}

// checkDerived: every endpoint is routed, in the OpenAPI document and on the
// docs page.
func checkDerived(t *testing.T, s *stack, eps map[string]api.Endpoint) {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	resp, err := http.Get(s.url + "/api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	resp.Body.Close()
	resp, err = http.Get(s.url + "/api/docs")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("docs page content type %q", ct)
	}
	for name, ep := range eps {
		op, ok := doc.Paths[ep.Path][strings.ToLower(ep.Method)]
		if !ok || op.OperationID != name {
			t.Errorf("%s is missing from the OpenAPI document (%s %s)", name, ep.Method, ep.Path)
		}
		if !strings.Contains(string(page), name) {
			t.Errorf("%s is missing from the docs page", name)
		}
		// Routed: a request to it is never answered "no such endpoint". The
		// binding "nope" keeps the requests from changing anything.
		path := api.Expand(ep.Path, map[string]string{"name": "nope", "binding": "nope", "id": "x"})
		body := ""
		if ep.Name == "tmpnb.spawn" {
			body = `{"binding": "nope"}`
		}
		a := s.do(t, ep, ep.Method, path, body, "")
		if a.name == api.ErrRouteNotFound.Name {
			t.Errorf("%s (%s %s) is not routed", name, ep.Method, path)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
