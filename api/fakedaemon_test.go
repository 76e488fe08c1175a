package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

const testToken = "secret"

// fakeDaemon answers like the catalog says, from memory: enough of nbpool
// for the client's tests. Its routes come from the catalog, as the real
// router's do.
type fakeDaemon struct {
	mu       sync.Mutex
	bindings map[string]Binding
	full     bool // tmpnb.spawn answers 429
	degraded bool // ops.health answers 503
	queries  []string
	srv      *httptest.Server
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	d := &fakeDaemon{bindings: map[string]Binding{"fake": {Name: "fake", Image: "nbpool-test/fakenb:latest"}}}
	handlers := d.handlers()
	mux := http.NewServeMux()
	for _, e := range Endpoints() {
		h, ok := handlers[e.Name]
		if !ok {
			h = func(w http.ResponseWriter, r *http.Request) {
				writeTestError(w, ErrInternal.New("reason", "not in the fake"))
			}
		}
		mux.HandleFunc(e.Method+" "+e.Path, func(w http.ResponseWriter, r *http.Request) {
			d.mu.Lock()
			d.queries = append(d.queries, r.Method+" "+r.URL.EscapedPath()+"?"+r.URL.RawQuery)
			d.mu.Unlock()
			if e.Auth == AuthAdmin && r.Header.Get("Authorization") != "token "+testToken {
				writeTestError(w, ErrUnauthorized.New("who", "the admin token"))
				return
			}
			h(w, r)
		})
	}
	d.srv = httptest.NewServer(mux)
	t.Cleanup(d.srv.Close)
	return d
}

func (d *fakeDaemon) lastQuery() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries[len(d.queries)-1]
}

func writeTestJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeTestError(w http.ResponseWriter, e *Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(e.RetryAfter))
	}
	writeTestJSON(w, e.Status, ErrorBody{Error: e})
}

func (d *fakeDaemon) handlers() map[string]http.HandlerFunc {
	binding := func(w http.ResponseWriter, name string) (Binding, bool) {
		d.mu.Lock()
		b, ok := d.bindings[name]
		d.mu.Unlock()
		if !ok {
			writeTestError(w, ErrBindingNotFound.New("name", name))
		}
		return b, ok
	}
	launch := func(binding, id string) Launch {
		return Launch{ID: id, Binding: binding, State: StateClaimed, URI: "/api/binders/" + binding + "/" + id, Created: time.Unix(0, 0).UTC()}
	}
	return map[string]http.HandlerFunc{
		"bindings.list": func(w http.ResponseWriter, r *http.Request) {
			d.mu.Lock()
			defer d.mu.Unlock()
			l := BindingList{Items: []Binding{}}
			for _, b := range d.bindings {
				l.Items = append(l.Items, b)
			}
			writeTestJSON(w, 200, l)
		},
		"bindings.create": func(w http.ResponseWriter, r *http.Request) {
			var b Binding
			if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
				writeTestError(w, ErrMalformedRequest.New("reason", err))
				return
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			if _, ok := d.bindings[b.Name]; ok {
				writeTestError(w, ErrBindingExists.New("name", b.Name))
				return
			}
			d.bindings[b.Name] = b
			writeTestJSON(w, 201, b)
		},
		"bindings.get": func(w http.ResponseWriter, r *http.Request) {
			if b, ok := binding(w, r.PathValue("name")); ok {
				writeTestJSON(w, 200, b)
			}
		},
		"bindings.exists": func(w http.ResponseWriter, r *http.Request) {
			d.mu.Lock()
			_, ok := d.bindings[r.PathValue("name")]
			d.mu.Unlock()
			if !ok {
				w.WriteHeader(404) // HEAD: no body
			}
		},
		"bindings.put": func(w http.ResponseWriter, r *http.Request) {
			var b Binding
			_ = json.NewDecoder(r.Body).Decode(&b)
			d.mu.Lock()
			defer d.mu.Unlock()
			_, existed := d.bindings[r.PathValue("name")]
			d.bindings[r.PathValue("name")] = b
			writeTestJSON(w, map[bool]int{true: 200, false: 201}[existed], b)
		},
		"bindings.delete": func(w http.ResponseWriter, r *http.Request) {
			if _, ok := binding(w, r.PathValue("name")); !ok {
				return
			}
			if r.URL.Query().Get("force") != "true" {
				writeTestError(w, ErrBindingInUse.New("name", r.PathValue("name"), "count", 1))
				return
			}
			w.WriteHeader(204)
		},
		"binders.spawn": func(w http.ResponseWriter, r *http.Request) {
			var req SpawnRequest
			_ = json.NewDecoder(r.Body).Decode(&req)
			if _, ok := binding(w, r.PathValue("binding")); !ok {
				return
			}
			l := launch(r.PathValue("binding"), "warm1")
			if req.Path == "cold" {
				l.ID, l.State = "cold1", StateWarming
				writeTestJSON(w, 202, l)
				return
			}
			l.URL = "/user/warm1/" + req.Path + "?token=t"
			writeTestJSON(w, 201, l)
		},
		"binders.list": func(w http.ResponseWriter, r *http.Request) {
			writeTestJSON(w, 200, LaunchList{Items: []Launch{launch(r.PathValue("binding"), "a")}})
		},
		"binders.status": func(w http.ResponseWriter, r *http.Request) {
			if r.PathValue("id") == "gone" {
				writeTestError(w, ErrLaunchNotFound.New("id", "gone", "binding", r.PathValue("binding")))
				return
			}
			writeTestJSON(w, 200, launch(r.PathValue("binding"), r.PathValue("id")))
		},
		"binders.stop": func(w http.ResponseWriter, r *http.Request) {
			l := launch(r.PathValue("binding"), r.PathValue("id"))
			l.State, l.EndReason = StateEnded, EndStopped
			writeTestJSON(w, 200, l)
		},
		"binders.events": d.events,
		"pools.list": func(w http.ResponseWriter, r *http.Request) {
			writeTestJSON(w, 200, PoolList{Items: []Pool{{Binding: "fake", Available: 2}}})
		},
		"pools.get": func(w http.ResponseWriter, r *http.Request) {
			if _, ok := binding(w, r.PathValue("binding")); ok {
				writeTestJSON(w, 200, Pool{Binding: "fake", Available: 2, MinPool: 2})
			}
		},
		"pools.set": func(w http.ResponseWriter, r *http.Request) {
			var u PoolUpdate
			_ = json.NewDecoder(r.Body).Decode(&u)
			if u.MinPool == nil || *u.MinPool < 0 {
				writeTestError(w, ErrInvalidPool.New("reason", "minPool is missing or negative"))
				return
			}
			writeTestJSON(w, 200, Pool{Binding: r.PathValue("binding"), MinPool: *u.MinPool})
		},
		"tmpnb.spawn": func(w http.ResponseWriter, r *http.Request) {
			if d.full {
				w.Header().Set("Retry-After", "3")
				writeTestJSON(w, 429, TmpnbFull{Status: "full"})
				return
			}
			writeTestJSON(w, 200, TmpnbSpawn{URL: "/user/abc/tree?token=t"})
		},
		"tmpnb.stats": func(w http.ResponseWriter, r *http.Request) {
			writeTestJSON(w, 200, Stats{Available: 2, Capacity: 10, Version: "test"})
		},
		"ops.health": func(w http.ResponseWriter, r *http.Request) {
			if d.degraded {
				writeTestJSON(w, 503, Health{Status: "degraded", Checks: map[string]Check{"engine": {Message: "down"}}})
				return
			}
			writeTestJSON(w, 200, Health{Status: "ok", Checks: map[string]Check{"engine": {OK: true}}})
		},
		"ops.version": func(w http.ResponseWriter, r *http.Request) {
			writeTestJSON(w, 200, Version{Version: "test", API: "1"})
		},
	}
}

// events streams the progress of launch "cold1": comments, a keepalive,
// other fields, a multi-line data event, then ready, and holds the
// connection open as BinderHub does. Launch "hang" sends one event and
// hangs; launch "short" ends without a ready event.
func (d *fakeDaemon) events(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "gone" {
		writeTestError(w, ErrLaunchNotFound.New("id", id, "binding", r.PathValue("binding")))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	flush := func(s string) {
		fmt.Fprint(w, s)
		w.(http.Flusher).Flush()
	}
	flush(": welcome\n\n")
	flush(`data: {"phase": "creating", "message": "Creating", "progress": 10}` + "\n\n")
	if id == "hang" {
		<-r.Context().Done()
		return
	}
	flush(":keepalive\r\n\r\nevent: progress\nid: 3\nretry: 1000\n")
	flush("data: {\"phase\": \"probing\",\ndata: \"message\": \"Probing\", \"progress\": 50}\n\n")
	if id == "short" {
		return
	}
	flush(`data: {"phase": "ready", "progress": 100, "ready": true, "id": "cold1", "url": "/user/cold1/tree"}` + "\n\n")
	<-r.Context().Done()
}
