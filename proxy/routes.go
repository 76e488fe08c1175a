package proxy

import (
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"
)

// Route is one launch's entry in the route table: requests for /user/<ID>/
// that carry Token go to the notebook server at Target.
//
// A Route is a plain value; the Proxy keeps its own copy.
type Route struct {
	// ID is the launch id, the <id> of /user/<id>/ (base62, 16+ chars).
	ID string
	// Binding names the launch's binding; it is used for the relaunch link
	// of error pages and in log lines.
	Binding string
	// Target is the "host:port" of the container on the launch network.
	Target string
	// Token is the launch token (hex). A route with an empty token is never
	// opened: the proxy fails closed.
	Token string
}

// activityResolution is how much newer than the recorded lastActivity a
// request must be to store a new value. It keeps concurrent requests of
// one launch from all writing the same cache line; culling works on
// minutes, so a millisecond is invisible.
const activityResolution = int64(time.Millisecond)

// launchState is what survives replacing a route with Add: the activity
// clock and the open websocket tunnels belong to the launch, not to one
// version of its route.
type launchState struct {
	last        atomic.Int64 // lastActivity, unix nanoseconds
	unreachable atomic.Int64 // last Options.Unreachable call, unix nanoseconds

	mu      sync.Mutex
	tunnels map[*tunnel]struct{}
	removed bool // set by Remove; no tunnel may be added after it
}

// touch records activity at now (unix nanoseconds), lock-free.
func (s *launchState) touch(now int64) {
	if cur := s.last.Load(); now-cur < activityResolution {
		return
	}
	s.last.Store(now)
}

// addTunnel registers t and reports false if the launch was removed in
// the meantime (the caller then closes t).
func (s *launchState) addTunnel(t *tunnel) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed {
		return false
	}
	if s.tunnels == nil {
		s.tunnels = make(map[*tunnel]struct{})
	}
	s.tunnels[t] = struct{}{}
	return true
}

func (s *launchState) dropTunnel(t *tunnel) {
	s.mu.Lock()
	delete(s.tunnels, t)
	s.mu.Unlock()
}

// openTunnels returns a snapshot of the open tunnels; if remove is set the
// launch is marked removed under the same lock.
func (s *launchState) openTunnels(remove bool) []*tunnel {
	s.mu.Lock()
	defer s.mu.Unlock()
	if remove {
		s.removed = true
	}
	ts := make([]*tunnel, 0, len(s.tunnels))
	for t := range s.tunnels {
		ts = append(ts, t)
	}
	return ts
}

// route is a Route as the proxy serves it. Everything but st is immutable
// after Add.
type route struct {
	Route
	p      *Proxy
	token  []byte // Token, for subtle.ConstantTimeCompare
	prefix string // "/user/<id>/", also the cookie path
	rp     *httputil.ReverseProxy
	st     *launchState
}

// Add registers r, or replaces the route with the same ID. A new route's
// lastActivity starts at now (Touch sets it otherwise). Replacing keeps the
// launch's lastActivity and its open websockets, unless the target changed:
// tunnels to the old target are then closed.
//
// Add is safe for concurrent use with every other method; requests that
// looked up the old route finish on it.
func (p *Proxy) Add(r Route) {
	rt := &route{
		Route:  r,
		p:      p,
		token:  []byte(r.Token),
		prefix: "/user/" + r.ID + "/",
	}
	rt.rp = &httputil.ReverseProxy{
		Rewrite:        rt.rewrite,
		Transport:      p.transport,
		BufferPool:     p.bufs,
		ModifyResponse: rt.modifyResponse,
		ErrorHandler:   rt.proxyError,
		ErrorLog:       p.errLog,
	}
	if !validID(r.ID) {
		p.log.Warn().Str("launch", r.ID).Str("binding", r.Binding).Msg("route id is not [A-Za-z0-9]+: no request can reach it")
	}
	if r.Token == "" {
		p.log.Warn().Str("launch", r.ID).Str("binding", r.Binding).Msg("route without a token: every request will be refused")
	}

	var stale []*tunnel
	p.wmu.Lock()
	if v, ok := p.routes.Load(r.ID); ok {
		old := v.(*route)
		rt.st = old.st
		if old.Target != r.Target {
			stale = rt.st.openTunnels(false)
		}
	} else {
		rt.st = &launchState{}
		rt.st.last.Store(time.Now().UnixNano())
		p.count.Add(1)
	}
	p.routes.Store(r.ID, rt)
	p.wmu.Unlock()

	for _, t := range stale {
		t.close()
	}
	p.log.Debug().Str("launch", r.ID).Str("binding", r.Binding).Str("target", r.Target).Msg("route added")
}

// Remove deletes the route of id, if any, and closes its open websocket
// tunnels. Requests already being proxied finish. Safe for concurrent use.
func (p *Proxy) Remove(id string) {
	p.wmu.Lock()
	v, ok := p.routes.LoadAndDelete(id)
	if ok {
		p.count.Add(-1)
	}
	p.wmu.Unlock()
	if !ok {
		return
	}
	rt := v.(*route)
	for _, t := range rt.st.openTunnels(true) {
		t.close()
	}
	p.log.Debug().Str("launch", id).Str("binding", rt.Binding).Msg("route removed")
}

// Has reports whether a route for id is registered. Safe for concurrent use.
func (p *Proxy) Has(id string) bool {
	_, ok := p.routes.Load(id)
	return ok
}

// Len returns the number of routes. Safe for concurrent use.
func (p *Proxy) Len() int { return int(p.count.Load()) }

// lookup returns the route of id; it takes no lock.
func (p *Proxy) lookup(id string) (*route, bool) {
	v, ok := p.routes.Load(id)
	if !ok {
		return nil, false
	}
	return v.(*route), true
}

// Touch sets the lastActivity of id's route to t (for instance the value
// restored from the store at restart), even if t is earlier than the
// current value. Unknown ids are ignored. Safe for concurrent use.
func (p *Proxy) Touch(id string, t time.Time) {
	if rt, ok := p.lookup(id); ok {
		rt.st.last.Store(t.UnixNano())
	}
}

// LastActivity returns the time of the last request, response chunk or
// websocket chunk of id's route (resolution: a millisecond), and false if
// there is no such route. Safe for concurrent use.
func (p *Proxy) LastActivity(id string) (time.Time, bool) {
	rt, ok := p.lookup(id)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, rt.st.last.Load()), true
}

// ActivitySince returns the routes whose lastActivity is after t, with
// that time: what changed since the previous flush to the store. It walks
// the table without blocking requests. Safe for concurrent use.
func (p *Proxy) ActivitySince(t time.Time) map[string]time.Time {
	since := t.UnixNano()
	out := make(map[string]time.Time)
	p.routes.Range(func(k, v any) bool {
		if last := v.(*route).st.last.Load(); last > since {
			out[k.(string)] = time.Unix(0, last)
		}
		return true
	})
	return out
}
