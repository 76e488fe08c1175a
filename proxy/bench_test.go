package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// BenchmarkProxySmall compares keep-alive GETs of a tiny body made directly
// to a backend with the same GETs through the proxy (token in the
// Authorization header), and the proxy's per-route ReverseProxy with one
// shared ReverseProxy that finds the route in the request context.
// allocs/op counts the whole process: client, proxy and backend.
//
// Every goroutine carries a pprof label role=client, proxy or backend
// (goroutines inherit labels, and httptest starts each server's accept
// loop from the caller), so a CPU profile splits by role:
//
//	go test ./proxy/ -run '^$' -bench ProxySmall -cpuprofile cpu.out
//	go tool pprof -top -tagfocus role=proxy proxy.test cpu.out
func BenchmarkProxySmall(b *testing.B) {
	body := []byte(`{"started":"2024-01-01T00:00:00Z","kernels":0}`)
	be := labelled("backend", func() *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}))
	})
	defer be.Close()
	p := New(Options{Log: zerolog.Nop()})
	r := Route{ID: idA, Binding: "bench", Target: be.Listener.Addr().String(), Token: "0123456789abcdef0123456789abcdef"}
	p.Add(r)
	ps := labelled("proxy", func() *httptest.Server { return httptest.NewServer(p) })
	defer ps.Close()
	shared := labelled("proxy", func() *httptest.Server { return httptest.NewServer(sharedRP(p)) })
	defer shared.Close()
	defer p.transport.CloseIdleConnections()

	for _, bc := range []struct{ name, base string }{
		{"direct", be.URL},
		{"proxy", ps.URL},
		{"proxy-shared-rp", shared.URL},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tr := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			url := bc.base + "/user/" + idA + "/api/status"
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("role", "client")))
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Authorization", "token "+r.Token)
				for pb.Next() {
					res, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					n, _ := io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 || n != int64(len(body)) {
						b.Errorf("status %d, %d bytes", res.StatusCode, n)
						return
					}
				}
			})
		})
	}
}

// labelled runs start with the pprof label role=role on the calling
// goroutine, so the goroutines it starts carry the label too.
func labelled(role string, start func() *httptest.Server) (s *httptest.Server) {
	pprof.Do(context.Background(), pprof.Labels("role", role), func(context.Context) { s = start() })
	return s
}

type routeKey struct{}

// sharedRP is the alternative design measured by BenchmarkProxySmall: one
// ReverseProxy for all routes, the route passed in the request context.
func sharedRP(p *Proxy) http.Handler {
	rtOf := func(ctx context.Context) *route { return ctx.Value(routeKey{}).(*route) }
	rp := &httputil.ReverseProxy{
		Rewrite:        func(pr *httputil.ProxyRequest) { rtOf(pr.In.Context()).rewrite(pr) },
		Transport:      p.transport,
		BufferPool:     p.bufs,
		ModifyResponse: func(res *http.Response) error { return rtOf(res.Request.Context()).modifyResponse(res) },
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			rtOf(r.Context()).proxyError(w, r, err)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _, _, ok := splitUserPath(r.URL.EscapedPath())
		rt, found := p.lookup(id)
		if !ok || !found || !p.authorize(w, r, rt, false) {
			http.NotFound(w, r)
			return
		}
		p.requests.Add(1)
		rt.st.touch(time.Now().UnixNano())
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, rt)))
	})
}
