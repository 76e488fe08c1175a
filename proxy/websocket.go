package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// wsBufSize is the copy buffer of a tunnel direction. Buffers come from
	// a pool and are held only while a chunk is in flight (see waiter).
	wsBufSize = 16 << 10
	// handshakeTimeout bounds the backend's answer to an upgrade request.
	handshakeTimeout = 30 * time.Second
	// halfCloseGrace is how long a tunnel stays open in one direction after
	// the other one ended cleanly; then it is closed.
	halfCloseGrace = 10 * time.Second
)

// hopHeaders are removed from forwarded upgrade requests and relayed
// responses, as httputil.ReverseProxy does.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// upgradeType returns the protocol r asks to switch to ("websocket"), or ""
// when the Connection header does not ask for an upgrade.
func upgradeType(h http.Header) string {
	for _, v := range h["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(tok), "upgrade") {
				return h.Get("Upgrade")
			}
		}
	}
	return ""
}

func removeHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = textproto.TrimString(tok); tok != "" {
				h.Del(tok)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// serveUpgrade forwards an upgrade request to rt with the same rules as
// ReverseProxy's Rewrite, and on a 101 turns the two connections into a
// tunnel that outlives the handler. Any other answer is relayed as is.
func (p *Proxy) serveUpgrade(w http.ResponseWriter, r *http.Request, rt *route, upType, rest string) {
	ctx := r.Context()
	out := r.Clone(ctx)
	out.RequestURI = ""
	out.Close = false
	if r.ContentLength == 0 {
		out.Body = nil
	}
	removeHopHeaders(out.Header)
	out.Header.Set("Connection", "Upgrade")
	out.Header.Set("Upgrade", upType)
	for _, k := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		out.Header.Del(k)
	}
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header.Set("User-Agent", "") // no Go-http-client default
	}
	rt.rewrite(&httputil.ProxyRequest{In: r, Out: out})

	bc, err := p.dialer.DialContext(ctx, "tcp", rt.Target)
	if err != nil {
		p.upgradeFailed(w, r, rt, rest, err)
		return
	}
	// The handshake is bounded by a deadline and by the client's patience.
	_ = bc.SetDeadline(time.Now().Add(handshakeTimeout))
	stop := context.AfterFunc(ctx, func() { _ = bc.SetDeadline(time.Unix(1, 0)) })
	br := p.getReader(bc)
	res, err := p.handshake(bc, br, out)
	if err != nil {
		stop()
		bc.Close()
		p.putReader(br)
		p.upgradeFailed(w, r, rt, rest, err)
		return
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		p.relay(w, res) // still bounded by the deadline and the client
		stop()
		bc.Close()
		p.putReader(br)
		return
	}
	if resType := upgradeType(res.Header); !strings.EqualFold(resType, upType) {
		stop()
		bc.Close()
		p.putReader(br)
		p.log.Warn().Str("launch", rt.ID).Msgf("backend switched to protocol %q when %q was requested", resType, upType)
		http.Error(w, "bad gateway: backend switched to the wrong protocol", http.StatusBadGateway)
		return
	}

	cc, brw, err := http.NewResponseController(w).Hijack()
	if !stop() || err != nil { // client gone, or not hijackable (HTTP/2)
		bc.Close()
		p.putReader(br)
		if err != nil {
			p.log.Warn().Err(err).Str("launch", rt.ID).Msg("cannot hijack the client connection for a websocket")
			http.Error(w, "websocket upgrade not supported on this connection", http.StatusInternalServerError)
		} else if cc != nil {
			cc.Close()
		}
		return
	}
	_ = bc.SetDeadline(time.Time{})
	// Send the 101 through the server's writer (already allocated), and
	// pass on what either side sent early; then keep neither bufio.
	res.Body = nil
	err = res.Write(brw.Writer)
	if err == nil {
		err = brw.Writer.Flush()
	}
	if err == nil {
		err = forwardBuffered(bc, brw.Reader)
	}
	if err == nil {
		err = forwardBuffered(cc, br)
	}
	p.putReader(br)
	if err != nil {
		cc.Close()
		bc.Close()
		return
	}
	t := &tunnel{client: cc, backend: bc, st: rt.st, p: p}
	if !rt.st.addTunnel(t) {
		t.close()
		return
	}
	p.wsTotal.Add(1)
	p.wsOpen.Add(1)
	t.running.Store(2)
	go t.pump(bc, cc)
	go t.pump(cc, bc)
}

// handshake writes the upgrade request to the backend and reads its answer.
func (p *Proxy) handshake(bc net.Conn, br *bufio.Reader, out *http.Request) (*http.Response, error) {
	if err := out.Write(bc); err != nil {
		return nil, fmt.Errorf("send upgrade request: %w", err)
	}
	res, err := http.ReadResponse(br, out)
	if err != nil {
		return nil, fmt.Errorf("read upgrade response: %w", err)
	}
	return res, nil
}

// upgradeFailed answers an upgrade the backend did not answer: like
// proxyError, a client that went away accuses nobody.
func (p *Proxy) upgradeFailed(w http.ResponseWriter, r *http.Request, rt *route, rest string, err error) {
	if r.Context().Err() != nil {
		return
	}
	p.backendDown(rt, err)
	p.answer(w, r, rest, unreachableAnswer(rt))
}

// relay writes a backend's non-101 answer to an upgrade request.
func (p *Proxy) relay(w http.ResponseWriter, res *http.Response) {
	defer res.Body.Close()
	removeHopHeaders(res.Header)
	h := w.Header()
	for k, vv := range res.Header {
		h[k] = vv
	}
	w.WriteHeader(res.StatusCode)
	buf := p.bufs.Get()
	defer p.bufs.Put(buf)
	_, _ = io.CopyBuffer(w, res.Body, buf)
}

// forwardBuffered writes what br holds already to dst.
func forwardBuffered(dst io.Writer, br *bufio.Reader) error {
	n := br.Buffered()
	if n == 0 {
		return nil
	}
	b, _ := br.Peek(n)
	_, err := dst.Write(b)
	return err
}

func (p *Proxy) getReader(c net.Conn) *bufio.Reader {
	if br, ok := p.readers.Get().(*bufio.Reader); ok {
		br.Reset(c)
		return br
	}
	return bufio.NewReaderSize(c, 4<<10)
}

func (p *Proxy) putReader(br *bufio.Reader) {
	br.Reset(nil)
	p.readers.Put(br)
}

// tunnel is one open websocket: two connections and two goroutines copying
// between them. Closing either connection ends both goroutines.
type tunnel struct {
	client, backend net.Conn
	st              *launchState
	p               *Proxy
	running         atomic.Int32 // directions still copying
	once            sync.Once
}

// close closes both connections; the pumps then end and unregister.
func (t *tunnel) close() {
	t.once.Do(func() {
		t.client.Close()
		t.backend.Close()
	})
}

// pump copies src to dst until src ends. Every chunk counts as activity.
// A clean end (EOF) is passed on as a half-close and gives the other
// direction halfCloseGrace to finish; an error closes the whole tunnel.
func (t *tunnel) pump(dst, src net.Conn) {
	w := newWaiter(src)
	var err error
	for {
		if err = w.wait(); err != nil {
			break
		}
		buf := t.p.wsBufs.Get()
		b, _ := buf.(*[wsBufSize]byte)
		if b == nil {
			b = new([wsBufSize]byte)
		}
		n, rerr := src.Read(b[:])
		if n > 0 {
			t.st.touch(time.Now().UnixNano())
			_, err = dst.Write(b[:n])
		}
		t.p.wsBufs.Put(b)
		if err == nil {
			err = rerr
		}
		if err != nil {
			break
		}
	}
	if errors.Is(err, io.EOF) {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			_ = dst.SetReadDeadline(time.Now().Add(halfCloseGrace))
		} else {
			t.close()
		}
	} else {
		t.close()
	}
	if t.running.Add(-1) == 0 {
		t.close()
		t.st.dropTunnel(t)
		t.p.wsOpen.Add(-1)
	}
}

// CloseWebsockets closes every open websocket tunnel and returns how many
// it closed. http.Server.Shutdown does not wait for hijacked connections:
// call this after the drain. Tunnels opened afterwards are not affected.
// Safe for concurrent use.
func (p *Proxy) CloseWebsockets() int {
	n := 0
	p.routes.Range(func(_, v any) bool {
		for _, t := range v.(*route).st.openTunnels(false) {
			t.close()
			n++
		}
		return true
	})
	return n
}
