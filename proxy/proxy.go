package proxy

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Options configures a Proxy. The zero value works: nothing is called back
// and unknown ids get the "session ended" page.
type Options struct {
	// Log receives the proxy's lines (component=proxy).
	Log zerolog.Logger
	// Ended reports the binding of an id that existed and has ended (from the
	// store's history), for the "session ended" page's relaunch link; nil
	// means never. It is called on the request's goroutine, for well-formed
	// ids without a route only, and must be safe for concurrent use.
	Ended func(ctx context.Context, id string) (binding string, ok bool)
	// Starting reports whether an id without a route is a launch whose
	// notebook server is still starting (a cold start whose URL was handed
	// out): it gets a page that reloads itself, 503 with Retry-After, instead
	// of "session ended". Nil means never. Same rules as Ended.
	Starting func(ctx context.Context, id string) bool
	// NotFoundRedirect, if set, answers unknown and ended ids with a 302 to
	// this URL instead of the page (as mybinder does with its custom 404);
	// the binding, if known, is added as ?binding=<name>. API clients still
	// get the JSON error.
	NotFoundRedirect string
	// Unreachable is called, in its own goroutine and at most once per id
	// per 5 seconds, when a route's container does not answer, so
	// the owner re-checks the launch.
	Unreachable func(id string)
	// TrustForwardedProto: a front proxy's X-Forwarded-Proto=https marks the
	// request as https (for the Secure cookie flag, and it is passed on to
	// the notebook server as is).
	TrustForwardedProto bool
	// DialTimeout for backends, default 5s.
	DialTimeout time.Duration
}

const (
	// unreachableEvery rate-limits Options.Unreachable per id.
	unreachableEvery = 5 * time.Second
	// maxIDLen bounds the id segment; longer ones are unknown at once.
	maxIDLen = 128
	// proxyBufSize is ReverseProxy's copy buffer (its own default).
	proxyBufSize = 32 << 10
)

// Proxy routes /user/<id>/ (HTTP and websockets) to the container of launch
// <id>. Create it with New; all its methods are safe for concurrent use,
// and the request path takes no lock (the route table is a sync.Map, the
// activity clocks are atomics).
type Proxy struct {
	opts        Options
	log         zerolog.Logger
	errLog      *log.Logger
	dialer      *net.Dialer
	transport   *http.Transport
	bufs        *bufPool  // ReverseProxy's copy buffers
	wsBufs      sync.Pool // *[wsBufSize]byte, websocket tunnel buffers
	readers     sync.Pool // *bufio.Reader for websocket handshakes
	notFoundURL *url.URL

	wmu    sync.Mutex // serializes Add and Remove; readers never take it
	routes sync.Map   // id -> *route
	count  atomic.Int64

	requests, forbidden, notFound, unreachable atomic.Int64
	wsTotal, wsOpen                            atomic.Int64
}

// Stats are the proxy's counters, read atomically one by one (not a
// consistent snapshot), for metrics.
type Stats struct {
	Routes         int   // routes in the table
	Requests       int64 // requests proxied, websocket upgrades included
	Forbidden      int64 // requests refused for want of the launch token
	NotFound       int64 // requests for unknown or ended ids
	Unreachable    int64 // requests answered 502: the container did not answer
	Websockets     int64 // websocket tunnels opened since New
	OpenWebsockets int64 // websocket tunnels open now
}

// New returns a Proxy with an empty route table. It shares one
// http.Transport (HTTP/1.1 only, no compression, up to 64 idle keep-alive
// connections per backend for 90 s) among all routes.
func New(opts Options) *Proxy {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	lg := opts.Log.With().Str("component", "proxy").Logger()
	p := &Proxy{
		opts:   opts,
		log:    lg,
		errLog: log.New(lg, "", 0),
		dialer: &net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second},
		bufs:   &bufPool{},
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	p.transport = &http.Transport{
		Proxy:                 nil, // never HTTP_PROXY: backends are local
		DialContext:           p.dialer.DialContext,
		MaxIdleConns:          8192,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
		Protocols:             &protos,
	}
	if opts.NotFoundRedirect != "" {
		u, err := url.Parse(opts.NotFoundRedirect)
		if err != nil {
			lg.Error().Err(err).Str("url", opts.NotFoundRedirect).Msg("NotFoundRedirect does not parse; showing the page instead")
		} else {
			p.notFoundURL = u
		}
	}
	return p
}

// Stats returns the counters. Safe for concurrent use.
func (p *Proxy) Stats() Stats {
	return Stats{
		Routes:         p.Len(),
		Requests:       p.requests.Load(),
		Forbidden:      p.forbidden.Load(),
		NotFound:       p.notFound.Load(),
		Unreachable:    p.unreachable.Load(),
		Websockets:     p.wsTotal.Load(),
		OpenWebsockets: p.wsOpen.Load(),
	}
}

// ServeHTTP handles every path starting with /user/. The launch id is the
// segment after /user/ in the escaped path; it must be non-empty and only
// [A-Za-z0-9], anything else is an unknown id. /user/<id> redirects to
// /user/<id>/. Requests carrying the launch token are proxied with path,
// query, Host, Origin and cookies unchanged; websocket upgrades become
// tunnels that live on after ServeHTTP returns (see CloseWebsockets).
//
// Mount it so that nothing cleans or unescapes the path before it (no
// http.ServeMux pattern, gorilla/mux only with SkipClean), and serve it from
// an http.Server without ReadTimeout or WriteTimeout, which would cut long
// downloads, uploads and event streams. Safe for concurrent use.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, rest, slash, ok := splitUserPath(r.URL.EscapedPath())
	if !ok {
		p.answerNotFound(w, r, id, "", false)
		return
	}
	if !slash {
		target := "/user/" + id + "/"
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		w.Header().Set("Location", target)
		w.WriteHeader(http.StatusMovedPermanently)
		return
	}
	rt, found := p.lookup(id)
	if !found {
		p.answerNotFound(w, r, id, rest, true)
		return
	}
	upgrade := upgradeType(r.Header)
	if !p.authorize(w, r, rt, upgrade != "") {
		p.forbidden.Add(1)
		p.answer(w, r, rest, forbiddenAnswer(rt))
		return
	}
	p.requests.Add(1)
	rt.st.touch(time.Now().UnixNano())
	if upgrade != "" {
		p.serveUpgrade(w, r, rt, upgrade, rest)
		return
	}
	rt.rp.ServeHTTP(w, r)
}

// splitUserPath splits an escaped path "/user/<id>/<rest>". slash reports
// whether the id was followed by "/"; ok whether id is a well-formed id.
func splitUserPath(escaped string) (id, rest string, slash, ok bool) {
	s, found := strings.CutPrefix(escaped, "/user/")
	if !found {
		return "", "", false, false
	}
	id, rest, slash = strings.Cut(s, "/")
	return id, rest, slash, validID(id)
}

func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// rewrite is the route's ReverseProxy.Rewrite, also applied to websocket
// upgrades. ReverseProxy has already dropped the client's Forwarded and
// X-Forwarded-* headers and the hop-by-hop ones; the path (Path and RawPath),
// query, Host, Origin, cookies and Authorization pass unchanged.
func (rt *route) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = rt.Target
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
	if rt.p.opts.TrustForwardedProto && forwardedHTTPS(pr.In) {
		pr.Out.Header.Set("X-Forwarded-Proto", "https")
	}
	if pr.Out.Body != nil {
		pr.Out.Body = &requestBody{rc: pr.Out.Body, st: rt.st}
	}
}

// modifyResponse makes every chunk of the response body count as activity,
// the last one included.
func (rt *route) modifyResponse(res *http.Response) error {
	if res.Body != nil && res.Body != http.NoBody {
		res.Body = &responseBody{rc: res.Body, st: rt.st}
	} else {
		rt.st.touch(time.Now().UnixNano())
	}
	return nil
}

// proxyError answers a request the backend did not answer: 502, and
// Options.Unreachable is told. A client that went away, or whose request
// body broke off, gets nothing and accuses nobody.
func (rt *route) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	p := rt.p
	if r.Context().Err() != nil {
		return
	}
	if b, ok := r.Body.(*requestBody); ok && b.failed.Load() {
		p.log.Debug().Err(err).Str("launch", rt.ID).Msg("request body broke off")
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	p.backendDown(rt, err)
	p.answer(w, r, restOf(r, rt), unreachableAnswer(rt))
}

// backendDown counts a 502, logs it and calls Options.Unreachable at most
// once per id per unreachableEvery.
func (p *Proxy) backendDown(rt *route, err error) {
	p.unreachable.Add(1)
	now := time.Now().UnixNano()
	last := rt.st.unreachable.Load()
	if now-last < int64(unreachableEvery) || !rt.st.unreachable.CompareAndSwap(last, now) {
		return
	}
	p.log.Warn().Err(err).Str("launch", rt.ID).Str("binding", rt.Binding).Str("target", rt.Target).
		Msg("notebook server does not answer")
	if f := p.opts.Unreachable; f != nil {
		go f(rt.ID)
	}
}

// restOf returns the part of r's escaped path after the route prefix.
func restOf(r *http.Request, rt *route) string {
	return strings.TrimPrefix(r.URL.EscapedPath(), rt.prefix)
}

// requestBody counts upload chunks as activity and remembers whether the
// client's body broke off (so a failed upload does not blame the backend).
type requestBody struct {
	rc     io.ReadCloser
	st     *launchState
	failed atomic.Bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.st.touch(time.Now().UnixNano())
	if err != nil && err != io.EOF {
		b.failed.Store(true)
	}
	return n, err
}

func (b *requestBody) Close() error { return b.rc.Close() }

// responseBody counts download chunks as activity.
type responseBody struct {
	rc io.ReadCloser
	st *launchState
}

func (b *responseBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.st.touch(time.Now().UnixNano())
	return n, err
}

func (b *responseBody) Close() error { return b.rc.Close() }

// bufPool implements httputil.BufferPool with 32 KiB arrays. It stores
// array pointers, so Get and Put allocate nothing.
type bufPool struct{ pool sync.Pool }

var _ httputil.BufferPool = (*bufPool)(nil)

// Get returns a 32 KiB buffer.
func (bp *bufPool) Get() []byte {
	if a, ok := bp.pool.Get().(*[proxyBufSize]byte); ok {
		return a[:]
	}
	return new([proxyBufSize]byte)[:]
}

// Put returns b to the pool; buffers of another size are dropped.
func (bp *bufPool) Put(b []byte) {
	if len(b) == proxyBufSize {
		bp.pool.Put((*[proxyBufSize]byte)(b))
	}
}
