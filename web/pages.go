package web

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/pool"
)

//go:embed templates/page.html
var templateFS embed.FS

var pageTemplate = template.Must(template.ParseFS(templateFS, "templates/page.html"))

// page is what the HTML template shows.
type page struct {
	Title, Message string
	Error          bool
	Suggestions    []string
	Link, LinkText string
	Refresh        string
	Events         string // event-stream URL a starting launch is followed on
	Bindings       []bindingRow
	status         int
}

type bindingRow struct {
	Name, Image string
	Available   int
}

func renderPage(w http.ResponseWriter, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if p.status == 0 {
		p.status = http.StatusOK
	}
	w.WriteHeader(p.status)
	_ = pageTemplate.Execute(w, p)
}

// indexPage lists the bindings with a launch button each.
func (s *Server) indexPage(w http.ResponseWriter, r *http.Request) {
	p := page{Title: "nbpool", Message: "Launch a notebook:"}
	for _, pl := range s.opts.Pools.Pools() {
		b, _ := s.opts.Pools.Binding(pl.Binding)
		p.Bindings = append(p.Bindings, bindingRow{Name: pl.Binding, Image: b.Image, Available: pl.Available})
	}
	if len(p.Bindings) == 0 {
		p.Message = "No binding is configured yet; create one with `nbpool bindings create -f FILE`."
	}
	renderPage(w, p)
}

// spawnPage is the browser launch link, as tmpnb's /spawn/<path>:
// GET /spawn/<binding>[/<path>] takes a warm container and redirects to it;
// with an empty pool it shows a page that follows the cold start and
// redirects when the notebook is ready; at capacity, "No Vacancy".
func (s *Server) spawnPage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		renderPage(w, page{Title: "Method not allowed", status: http.StatusMethodNotAllowed})
		return
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/spawn"), "/")
	binding, path, _ := strings.Cut(rest, "/")
	if binding == "" {
		binding = s.opts.DefaultBinding
	}
	q := r.URL.Query()
	if id := q.Get("launch"); id != "" {
		s.waitPage(w, r, binding, id, q.Get("token"))
		return
	}
	if r.Method == http.MethodHead {
		// Link checkers and `curl -I` must not use up containers.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		return
	}
	if s.opts.SpawnAuth == "admin" && !s.isAdmin(requestToken(r)) {
		renderPage(w, page{Title: "Launching needs a token", Error: true, status: http.StatusForbidden,
			Message: "This nbpool lets only its admin launch notebooks."})
		return
	}
	l, cold, err := s.opts.Pools.Claim(r.Context(), binding, path)
	if err != nil {
		s.errorPage(w, binding, err)
		return
	}
	if !cold {
		http.Redirect(w, r, l.URL, http.StatusFound)
		return
	}
	s.waitPage(w, r, binding, l.ID, l.Token)
}

// waitPage shows a starting launch: it redirects once the launch is claimed
// and follows it with EventSource meanwhile (a meta refresh without
// JavaScript).
func (s *Server) waitPage(w http.ResponseWriter, r *http.Request, binding, id, token string) {
	l, err := s.findLaunch(r.Context(), binding, id)
	c := &call{token: token, admin: s.isAdmin(token)}
	if err != nil || !c.holds(l) {
		renderPage(w, page{Title: "No such launch", Error: true, status: http.StatusNotFound,
			Link: "/spawn/" + binding, LinkText: "Launch a new notebook"})
		return
	}
	switch l.State {
	case api.StateClaimed:
		http.Redirect(w, r, l.URL, http.StatusFound)
	case api.StateEnded:
		renderPage(w, page{Title: "The launch failed", Error: true, status: http.StatusServiceUnavailable,
			Message: l.Error, Link: "/spawn/" + binding, LinkText: "Try again"})
	default:
		v := url.Values{"launch": {id}, "token": {token}}
		renderPage(w, page{Title: "Starting your notebook", Message: "This takes a few seconds.",
			Refresh: "2;url=/spawn/" + binding + "?" + v.Encode(),
			Events:  l.URI + "/events?" + url.Values{"token": {token}}.Encode()})
	}
}

// errorPage shows why a launch could not start.
func (s *Server) errorPage(w http.ResponseWriter, binding string, err error) {
	if errors.Is(err, pool.ErrNoBinding) {
		renderPage(w, page{Title: "No such environment", Error: true, status: http.StatusNotFound,
			Message: "There is no binding named " + binding + ".", Link: "/", LinkText: "See what can be launched"})
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	e := toAPIError(claimError(binding, err))
	p := page{Title: "Could not start a notebook", Error: true, status: e.Status, Message: e.Message,
		Suggestions: e.Suggestions, Link: "/spawn/" + binding, LinkText: "Try again"}
	if e.Name == api.ErrFull.Name {
		p.Title, p.Message, p.Suggestions = "No Vacancy", "All notebooks are in use right now. Please try again in a few seconds.", nil
		p.Refresh = "10"
	}
	renderPage(w, p)
}
