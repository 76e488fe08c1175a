package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// chunkSize is the unit in which bytes/<n> writes and upload reads.
const chunkSize = 32 << 10

// maxMessage is the largest websocket message the echo accepts. Messages
// are streamed through, not buffered, so this bounds nothing but abuse.
const maxMessage = 64 << 20

// pattern is the content of bytes/<n>: byte k of the body is byte(k % 256).
// chunkSize is a multiple of 256, so every chunk starts the cycle afresh.
// It is never written after initialisation.
var pattern = func() *[chunkSize]byte {
	var b [chunkSize]byte
	for i := range b {
		b[i] = byte(i)
	}
	return &b
}()

// copyBuffers holds *[chunkSize]byte for upload; wsBufferPool holds the
// websocket write buffers of connections between messages.
var (
	copyBuffers  = sync.Pool{New: func() any { return new([chunkSize]byte) }}
	wsBufferPool sync.Pool
)

// bytes streams n bytes of pattern with Content-Length set, or chunked
// without it when the query has chunked=1. Memory use does not depend on n.
func (s *server) bytes(w http.ResponseWriter, r *http.Request, arg string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeRaw(w, http.StatusMethodNotAllowed, ctJSON, bodyNotAllowed)
		return
	}
	n, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || n < 0 {
		http.Error(w, "bytes/<n>: n must be a non-negative integer", http.StatusBadRequest)
		return
	}
	chunked := queryValue(r.URL.RawQuery, "chunked") == "1"
	w.Header()["Content-Type"] = ctBinary
	if !chunked {
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if chunked {
		// Send the header now, so even a short body goes out chunked.
		_ = http.NewResponseController(w).Flush()
	}
	for n > 0 {
		k := min(n, chunkSize)
		if _, err := w.Write(pattern[:k]); err != nil {
			return
		}
		n -= k
	}
}

// upload reads the whole request body through a pooled buffer and answers
// its size and SHA-256.
func (s *server) upload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeRaw(w, http.StatusMethodNotAllowed, ctJSON, bodyNotAllowed)
		return
	}
	buf := copyBuffers.Get().(*[chunkSize]byte)
	defer copyBuffers.Put(buf)
	h := sha256.New()
	n, err := io.CopyBuffer(h, r.Body, buf[:])
	if err != nil {
		http.Error(w, "upload: "+err.Error(), http.StatusBadRequest)
		return
	}
	b := make([]byte, 0, 128)
	b = append(b, `{"size": `...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `, "sha256": "`...)
	b = hex.AppendEncode(b, h.Sum(nil))
	b = append(b, `"}`+"\n"...)
	writeRaw(w, http.StatusOK, ctJSON, b)
}

// events sends n server-sent events `data: {"i": k}` (k from 0), interval
// apart, flushing each one, then ends the response. Defaults: n=5,
// interval=100ms.
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	n, interval := 5, 100*time.Millisecond
	var err error
	if v := queryValue(r.URL.RawQuery, "n"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			http.Error(w, "events: n must be a non-negative integer", http.StatusBadRequest)
			return
		}
	}
	if v := queryValue(r.URL.RawQuery, "interval"); v != "" {
		if interval, err = time.ParseDuration(v); err != nil || interval < 0 {
			http.Error(w, "events: interval must be a non-negative duration", http.StatusBadRequest)
			return
		}
	}
	w.Header()["Content-Type"] = ctEvents
	w.Header()["Cache-Control"] = noCache
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return
	}
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	b := make([]byte, 0, 32)
	for i := range n {
		if i > 0 && tick != nil {
			select {
			case <-tick:
			case <-r.Context().Done():
				return
			}
		}
		b = append(b[:0], `data: {"i": `...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, "}\n\n"...)
		if _, err := w.Write(b); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// isKernelChannels reports whether rest is api/kernels/<kid>/channels.
func isKernelChannels(rest string) bool {
	kid, ok := strings.CutPrefix(rest, "api/kernels/")
	if !ok {
		return false
	}
	kid, ok = strings.CutSuffix(kid, "/channels")
	return ok && kid != "" && !strings.Contains(kid, "/")
}

// channels upgrades to a websocket and echoes every message back with the
// same type, streaming it frame by frame, until the peer goes away. Open
// connections are counted for api/status.
func (s *server) channels(w http.ResponseWriter, r *http.Request) {
	c, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered with an error status.
	}
	defer c.Close()
	s.conns.Add(1)
	defer s.conns.Add(-1)
	c.SetReadLimit(maxMessage)
	for {
		typ, rd, err := c.NextReader()
		if err != nil {
			return
		}
		s.touch()
		wr, err := c.NextWriter(typ)
		if err != nil {
			return
		}
		if _, err := io.Copy(wr, rd); err != nil {
			return
		}
		if err := wr.Close(); err != nil {
			return
		}
	}
}
