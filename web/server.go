// Package web serves nbpool's HTTP API, declared in the api catalog, and its
// few HTML pages; /user/ goes to the notebook proxy.
package web

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/pool"
	"github.com/nbpool/nbpool/store"
)

// Options configure a Server.
type Options struct {
	Log   zerolog.Logger
	Pools *pool.Manager
	Store *store.Store
	// Proxy serves /user/<id>/….
	Proxy http.Handler
	// Engine is pinged by the health check.
	Engine interface {
		Ping(ctx context.Context) error
	}
	// Metrics serves /metrics when set.
	Metrics http.Handler
	// AdminToken guards the admin endpoints; empty refuses them to all.
	AdminToken string
	// SpawnAuth is "open" or "admin".
	SpawnAuth string
	// DefaultBinding serves /api/spawn/, /api/stats and /spawn/.
	DefaultBinding string
	// CORSOrigin, when set, lets pages from that origin ("*" for any) call
	// the API.
	CORSOrigin string
	Version    api.Version
	// SpawnWait bounds how long /api/spawn/ waits for a cold start beyond the
	// binding's readiness timeout.
	SpawnWait time.Duration
}

// Server is nbpool's HTTP front: API, pages and proxy.
type Server struct {
	opts    Options
	log     zerolog.Logger
	router  *mux.Router
	openapi []byte
	docs    []byte

	resizeMu sync.Mutex // serializes pool resizes
}

// New builds the server and its routes from the catalog. It fails when an
// endpoint has no handler or a handler no endpoint.
func New(opts Options) (*Server, error) {
	s := &Server{opts: opts, log: opts.Log.With().Str("component", "web").Logger()}
	if err := s.routes(); err != nil {
		return nil, err
	}
	info := api.OpenAPIInfo{Title: "nbpool", Version: opts.Version.Version}
	var err error
	if s.openapi, err = api.OpenAPI(info); err != nil {
		return nil, fmt.Errorf("openapi document: %w", err)
	}
	if s.docs, err = api.DocsHTML(info); err != nil {
		return nil, fmt.Errorf("docs page: %w", err)
	}
	return s, nil
}

// handlers maps every catalog endpoint to its handler.
func (s *Server) handlers() map[string]handlerFunc {
	return map[string]handlerFunc{
		"bindings.list":   s.listBindings,
		"bindings.create": s.createBinding,
		"bindings.get":    s.getBinding,
		"bindings.exists": s.getBinding,
		"bindings.put":    s.putBinding,
		"bindings.delete": s.deleteBinding,
		"binders.spawn":   s.spawn,
		"binders.list":    s.listLaunches,
		"binders.status":  s.launchStatus,
		"binders.events":  s.launchEvents,
		"binders.stop":    s.stopLaunch,
		"pools.list":      s.listPools,
		"pools.get":       s.getPool,
		"pools.set":       s.setPool,
		"pools.update":    s.setPool,
		"tmpnb.spawn":     s.tmpnbSpawn,
		"tmpnb.stats":     s.tmpnbStats,
		"ops.health":      s.health,
		"ops.version":     s.version,
		"ops.openapi":     s.openAPI,
		"ops.docs":        s.apiDocs,
	}
}

// routes registers the catalog on the router.
func (s *Server) routes() error {
	r := mux.NewRouter()
	hs := s.handlers()
	seen := map[string]bool{}
	for _, ep := range api.Endpoints() {
		h, ok := hs[ep.Name]
		if !ok {
			return fmt.Errorf("endpoint %s has no handler", ep.Name)
		}
		seen[ep.Name] = true
		for _, path := range append([]string{ep.Path}, ep.Aliases...) {
			r.Handle(path, s.serve(ep, h)).Methods(ep.Method)
		}
	}
	for name := range hs {
		if !seen[name] {
			return fmt.Errorf("handler %s has no endpoint in the catalog", name)
		}
	}
	notFound := api.Endpoint{Name: "notFound"}
	r.NotFoundHandler = s.serve(notFound, func(c *call) (reply, error) {
		return reply{}, api.ErrRouteNotFound.New("method", c.r.Method, "path", c.r.URL.Path)
	})
	r.MethodNotAllowedHandler = s.serve(notFound, func(c *call) (reply, error) {
		return reply{}, api.ErrRouteNotFound.New("method", c.r.Method, "path", c.r.URL.Path).WithStatus(http.StatusMethodNotAllowed)
	})
	s.router = r
	return nil
}

// ServeHTTP sends /user/ to the proxy, /metrics to the metrics handler, the
// browser launch pages to their handlers and the rest to the API router.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/user/"):
		s.opts.Proxy.ServeHTTP(w, r)
	case p == "/metrics" && s.opts.Metrics != nil:
		s.opts.Metrics.ServeHTTP(w, r)
	case strings.HasPrefix(p, "/api/"):
		if s.cors(w, r) {
			return
		}
		s.router.ServeHTTP(w, r)
	case p == "/spawn" || strings.HasPrefix(p, "/spawn/"):
		s.spawnPage(w, r)
	case p == "/":
		s.indexPage(w, r)
	default:
		s.router.ServeHTTP(w, r)
	}
}

// cors adds the CORS headers for an allowed origin and answers preflight
// requests (tmpnb answered OPTIONS with 204). It reports whether the request
// was answered.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	allow := s.opts.CORSOrigin
	if allow == "" || origin == "" {
		return false
	}
	if allow != "*" && !slices.Contains(strings.Split(allow, ","), origin) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Expose-Headers", "Location, Retry-After")
	if r.Method != http.MethodOptions {
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, HEAD, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", "3600")
	w.WriteHeader(http.StatusNoContent)
	return true
}
