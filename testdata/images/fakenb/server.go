package main

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// options configures a server; run fills it from the command line.
type options struct {
	baseURL    string        // prefix everything is served under; normalised
	token      string        // required on every request when not empty
	readyDelay time.Duration // api/status answers 503 until start+readyDelay
	start      time.Time     // reported as "started" in api/status
}

// server is the fake notebook server's http.Handler. It is safe for
// concurrent use; its only mutable state is atomic.
type server struct {
	base     string
	token    []byte
	started  time.Time
	readyAt  time.Time
	upgrader websocket.Upgrader

	lastActivity atomic.Int64 // unix nanoseconds
	conns        atomic.Int64 // open websocket connections
}

var _ http.Handler = (*server)(nil)

// Header values shared by every response. net/http only reads them.
var (
	ctJSON   = []string{"application/json"}
	ctText   = []string{"text/plain; charset=utf-8"}
	ctBinary = []string{"application/octet-stream"}
	ctEvents = []string{"text/event-stream"}
	noCache  = []string{"no-cache"}

	bodyForbidden  = []byte(`{"message": "Forbidden"}` + "\n")
	bodyNotFound   = []byte(`{"message": "Not Found"}` + "\n")
	bodyStarting   = []byte(`{"message": "Starting"}` + "\n")
	bodyNotAllowed = []byte(`{"message": "Method Not Allowed"}` + "\n")
	bodyOK         = []byte("ok\n")
)

func newServer(o options) *server {
	s := &server{
		base:    normaliseBase(o.baseURL),
		token:   []byte(o.token),
		started: o.start,
		readyAt: o.start.Add(o.readyDelay),
	}
	s.lastActivity.Store(o.start.UnixNano())
	s.upgrader = websocket.Upgrader{
		// Buffers of 0 reuse the ones net/http already allocated for the
		// connection; the pool frees write buffers of idle connections.
		WriteBufferPool: &wsBufferPool,
		Subprotocols:    []string{"v1.kernel.websocket.jupyter.org"},
		CheckOrigin:     func(*http.Request) bool { return true },
	}
	return s
}

// normaliseBase makes b start and end with "/".
func normaliseBase(b string) string {
	if !strings.HasPrefix(b, "/") {
		b = "/" + b
	}
	if !strings.HasSuffix(b, "/") {
		b += "/"
	}
	return b
}

// ServeHTTP routes by the decoded path below the base URL, after the token
// check that guards everything under it.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, s.base)
	if !ok {
		writeRaw(w, http.StatusNotFound, ctJSON, bodyNotFound)
		return
	}
	if !s.authorised(r) {
		writeRaw(w, http.StatusForbidden, ctJSON, bodyForbidden)
		return
	}
	if rest == "api/status" {
		// Like Jupyter's, polling the status is not activity.
		s.status(w, r)
		return
	}
	s.touch()
	switch {
	case rest == "small":
		writeRaw(w, http.StatusOK, ctText, bodyOK)
	case strings.HasPrefix(rest, "bytes/"):
		s.bytes(w, r, rest[len("bytes/"):])
	case rest == "upload":
		s.upload(w, r)
	case rest == "events":
		s.events(w, r)
	case isKernelChannels(rest):
		s.channels(w, r)
	default:
		s.describe(w, r)
	}
}

// authorised reports whether r carries the server's token, taken as Jupyter
// takes it: the token query parameter if present and not empty, else an
// "Authorization: token T" (or "Bearer T") header.
func (s *server) authorised(r *http.Request) bool {
	if len(s.token) == 0 {
		return true
	}
	got := queryValue(r.URL.RawQuery, "token")
	if got == "" {
		got = authHeaderToken(r.Header.Get("Authorization"))
	}
	return subtle.ConstantTimeCompare([]byte(got), s.token) == 1
}

// authHeaderToken extracts T from "token T" or "bearer T", any case.
func authHeaderToken(h string) string {
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !(strings.EqualFold(scheme, "token") || strings.EqualFold(scheme, "bearer")) {
		return ""
	}
	return strings.TrimSpace(rest)
}

// queryValue returns the first value of key in a raw query string without
// building the map url.ParseQuery would.
func queryValue(raw, key string) string {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k != key {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			if u, err := url.QueryUnescape(v); err == nil {
				return u
			}
		}
		return v
	}
	return ""
}

func (s *server) touch() { s.lastActivity.Store(time.Now().UnixNano()) }

// jupyterTime is the timestamp layout of Jupyter's api/status: RFC 3339,
// UTC, microseconds.
const jupyterTime = "2006-01-02T15:04:05.000000Z07:00"

// status answers Jupyter's api/status shape, or 503 until the ready delay
// has passed.
func (s *server) status(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeRaw(w, http.StatusMethodNotAllowed, ctJSON, bodyNotAllowed)
		return
	}
	if time.Now().Before(s.readyAt) {
		writeRaw(w, http.StatusServiceUnavailable, ctJSON, bodyStarting)
		return
	}
	b := make([]byte, 0, 160)
	b = append(b, `{"started": "`...)
	b = s.started.UTC().AppendFormat(b, jupyterTime)
	b = append(b, `", "last_activity": "`...)
	b = time.Unix(0, s.lastActivity.Load()).UTC().AppendFormat(b, jupyterTime)
	b = append(b, `", "connections": `...)
	b = strconv.AppendInt(b, s.conns.Load(), 10)
	b = append(b, `, "kernels": 0}`+"\n"...)
	writeRaw(w, http.StatusOK, ctJSON, b)
}

// arrival is what describe reports: the request as the server received it.
type arrival struct {
	Method     string      `json:"method"`
	RequestURI string      `json:"requestURI"`
	RawPath    string      `json:"rawPath"`
	Path       string      `json:"path"`
	Host       string      `json:"host"`
	Proto      string      `json:"proto"`
	RemoteAddr string      `json:"remoteAddr"`
	Headers    http.Header `json:"headers"`
	Cookies    []string    `json:"cookies"`
}

// describe answers 200 with a JSON description of what arrived. The request
// target is r.RequestURI, still encoded exactly as it was on the wire.
func (s *server) describe(w http.ResponseWriter, r *http.Request) {
	a := arrival{
		Method:     r.Method,
		RequestURI: r.RequestURI,
		RawPath:    r.URL.RawPath,
		Path:       r.URL.Path,
		Host:       r.Host,
		Proto:      r.Proto,
		RemoteAddr: r.RemoteAddr,
		Headers:    r.Header,
		Cookies:    []string{},
	}
	for _, c := range r.Cookies() {
		a.Cookies = append(a.Cookies, c.Name+"="+c.Value)
	}
	w.Header()["Content-Type"] = ctJSON
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(a)
}

// writeRaw writes a complete response with a shared Content-Type value.
func writeRaw(w http.ResponseWriter, code int, ct []string, body []byte) {
	w.Header()["Content-Type"] = ct
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
