package proxy

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/nbpool/nbpool/api"
)

//go:embed page.html
var pageSource string

// pageTemplate renders every error page: one self-contained HTML page, no
// external assets; html/template escapes every field.
var pageTemplate = template.Must(template.New("page").Parse(pageSource))

// answer is one error answer: a page for browsers, Err for API clients.
type answer struct {
	Err      *api.Error
	Title    string
	Message  string
	Hint     string
	Link     string
	LinkText string
	// Refresh, in seconds, makes the page reload itself.
	Refresh int
}

// Status is the HTTP status of the answer.
func (a answer) Status() string {
	return strconv.Itoa(a.Err.Status) + " " + http.StatusText(a.Err.Status)
}

// relaunchPath is where a visitor gets a new session: /spawn/<binding>,
// or the start page when the binding is not known.
func relaunchPath(binding string) string {
	if binding == "" {
		return "/"
	}
	return "/spawn/" + url.PathEscape(binding)
}

func relaunchLink(a *answer, binding string) {
	a.Link = relaunchPath(binding)
	if binding == "" {
		a.LinkText = "Go to the start page"
	} else {
		a.LinkText = "Launch " + binding + " again"
	}
}

func forbiddenAnswer(rt *route) answer {
	a := answer{
		Err:     api.ErrSessionForbidden.New(),
		Title:   "This notebook session needs its token",
		Message: "The link you followed does not carry this session's token, or the token is wrong.",
		Hint:    "Open the link you were given, with its ?token=, or send the header 'Authorization: token <token>'.",
	}
	relaunchLink(&a, rt.Binding)
	a.LinkText = "Launch a new session"
	return a
}

func unreachableAnswer(rt *route) answer {
	a := answer{
		Err:     api.ErrSessionUnreachable.New("id", rt.ID, "relaunch", relaunchPath(rt.Binding)),
		Title:   "The notebook server does not answer",
		Message: "The notebook server of this session does not answer right now.",
		Hint:    "Wait a few seconds and reload. If it persists, launch a new session.",
	}
	relaunchLink(&a, rt.Binding)
	a.LinkText = "Launch a new session"
	return a
}

func endedAnswer(id, binding string) answer {
	a := answer{
		Err:     api.ErrSessionNotFound.New("id", id, "relaunch", relaunchPath(binding)),
		Title:   "This notebook session has ended",
		Message: "The notebook session you are looking for has ended or never existed.",
		Hint:    "Sessions end when they are stopped or have been idle for a while; unsaved work is gone with them.",
	}
	relaunchLink(&a, binding)
	return a
}

func startingAnswer(id string) answer {
	return answer{
		Err:     api.ErrSessionStarting.New("id", id),
		Title:   "Your notebook is starting",
		Message: "The notebook server of this session is starting. This page reloads by itself.",
		Refresh: 2,
	}
}

// answerNotFound answers an unknown or ended id: a 302 to NotFoundRedirect
// if set, else the page or, for API clients, sessionNotFound. wellFormed
// says whether id is worth asking Options.Ended about.
func (p *Proxy) answerNotFound(w http.ResponseWriter, r *http.Request, id, rest string, wellFormed bool) {
	if wellFormed && p.opts.Starting != nil && p.opts.Starting(r.Context(), id) {
		w.Header().Set("Retry-After", "2")
		p.answer(w, r, rest, startingAnswer(id))
		return
	}
	p.notFound.Add(1)
	var binding string
	if wellFormed && p.opts.Ended != nil {
		if b, ok := p.opts.Ended(r.Context(), id); ok {
			binding = b
		}
	}
	if p.notFoundURL != nil && !wantsJSON(r, rest) {
		u := *p.notFoundURL
		if binding != "" {
			q := u.Query()
			q.Set("binding", binding)
			u.RawQuery = q.Encode()
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, u.String(), http.StatusFound)
		return
	}
	if len(id) > maxIDLen {
		id = id[:maxIDLen]
	}
	p.answer(w, r, rest, endedAnswer(id, binding))
}

// wantsJSON reports whether the client is an API client: it accepts JSON,
// or it calls the notebook server's REST API (/user/<id>/api/...).
func wantsJSON(r *http.Request, rest string) bool {
	return strings.HasPrefix(rest, "api/") || strings.Contains(r.Header.Get("Accept"), "application/json")
}

// answer writes a: the api.ErrorBody JSON for API clients, else the page.
func (p *Proxy) answer(w http.ResponseWriter, r *http.Request, rest string, a answer) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	var buf bytes.Buffer
	if wantsJSON(r, rest) {
		h.Set("Content-Type", "application/json")
		if err := json.NewEncoder(&buf).Encode(api.ErrorBody{Error: a.Err}); err != nil {
			p.log.Error().Err(err).Msg("encode error answer")
		}
	} else {
		h.Set("Content-Type", "text/html; charset=utf-8")
		if err := pageTemplate.Execute(&buf, a); err != nil {
			p.log.Error().Err(err).Msg("render error page")
		}
	}
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(a.Err.Status)
	_, _ = w.Write(buf.Bytes())
}
