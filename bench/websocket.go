package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nbpool/nbpool/api"
)

// wsConns and wsSize are the websocket scenario's connections and message
// size.
const (
	wsConns = 20
	wsSize  = 1024
)

// wsResult is one websocket load run.
type wsResult struct {
	RoundTrips int     `json:"roundTrips"`
	Rate       float64 `json:"roundTripsPerSecond"`
	P50Ms      float64 `json:"p50Ms"`
	P90Ms      float64 `json:"p90Ms"`
	P99Ms      float64 `json:"p99Ms"`
	MaxMs      float64 `json:"maxMs"`
}

// wsPace is the interval of the paced websocket load: 20 connections × 100
// round trips/s, well under what any of the paths can carry, so the
// latency shows the hops rather than queueing on saturated CPUs.
const wsPace = 10 * time.Millisecond

// runWebsocket measures 1 KiB echo round trips over wsConns connections to
// fakenb's kernel channels: through nbpool, directly and through CHP; back
// to back (each connection sends its next message when the echo is back:
// the targets hold against this one) and paced. The load generator is this
// binary's wsload command, pinned to the client CPUs.
func runWebsocket(ctx context.Context, e *env, l api.Launch, targets []proxyTarget) ([]row, error) {
	dur := pick(e, 5*time.Second, time.Second)
	if e.loadDuration > 0 {
		dur = e.loadDuration
	}
	rounds := pick(e, 3, 1)
	path := strings.TrimSuffix(l.Location, "/") + "/api/kernels/bench/channels?token=" + l.Token
	var ws []proxyTarget
	for _, t := range targets {
		if t.name == "direct" || t.name == "nbpool" || t.name == "CHP" {
			ws = append(ws, proxyTarget{t.name, "ws" + strings.TrimPrefix(t.base, "http")})
		}
	}
	type key struct {
		target string
		paced  bool
	}
	all := map[key][]wsResult{}
	for r := range rounds {
		for _, paced := range pick(e, []bool{false, true}, []bool{false}) {
			for i := range ws {
				t := ws[(i+r)%len(ws)]
				every := time.Duration(0)
				if paced {
					every = wsPace
				}
				res, err := wsLoad(ctx, e, t.base+path, dur, every)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", t.name, err)
				}
				logf("websocket via %s (paced %v): %.0f round trips/s, p50 %.3f ms, p99 %.3f ms", t.name, paced,
					res.Rate, res.P50Ms, res.P99Ms)
				all[key{t.name, paced}] = append(all[key{t.name, paced}], res)
			}
		}
	}
	med := map[key]wsResult{}
	runs := map[string][]wsResult{}
	for k, rs := range all {
		var p50, p99, rate []float64
		for _, r := range rs {
			p50, p99, rate = append(p50, r.P50Ms), append(p99, r.P99Ms), append(rate, r.Rate)
		}
		med[k] = wsResult{RoundTrips: rs[0].RoundTrips, P50Ms: median(p50), P99Ms: median(p99), Rate: median(rate)}
		name := k.target
		if k.paced {
			name += " paced"
		}
		runs[name] = rs
	}
	e.details["websocket"] = map[string]any{"connections": wsConns, "messageBytes": wsSize, "runs": runs,
		"pacedIntervalPerConnection": wsPace.String(),
		"loadGenerator":              "bench wsload (gorilla/websocket), one round trip at a time per connection"}

	machine := e.m.pinned("client")
	var rows []row
	for _, c := range []struct {
		base     string
		paced    bool
		p50, p99 float64
	}{{"direct", false, 1.15, 1.5}, {"CHP", false, 0, 0}, {"direct", true, 0, 0}} {
		nb, ok1 := med[key{"nbpool", c.paced}]
		base, ok2 := med[key{c.base, c.paced}]
		if !ok1 || !ok2 {
			continue
		}
		name := fmt.Sprintf("websocket 1 KiB echo, %d conns back to back", wsConns)
		if c.paced {
			name = fmt.Sprintf("websocket 1 KiB echo, %d conns paced at %.0f/s each", wsConns, float64(time.Second)/float64(wsPace))
		}
		rows = append(rows,
			ratioRow(name+": p50 vs "+c.base, "ms", nb.P50Ms, base.P50Ms, c.base, atMost, c.p50, machine),
			ratioRow(name+": p99 vs "+c.base, "ms", nb.P99Ms, base.P99Ms, c.base, atMost, c.p99, machine))
		if !c.paced && c.base == "direct" {
			rows = append(rows, ratioRow(name+": round trips/s vs direct", "round trips/s", nb.Rate, base.Rate,
				"direct", atLeast, 0, machine))
		}
	}
	if len(rows) == 0 {
		return nil, errors.New("no websocket figures")
	}
	return rows, nil
}

// wsLoad runs the wsload command pinned to the client CPUs.
func wsLoad(ctx context.Context, e *env, url string, d, every time.Duration) (wsResult, error) {
	cmd := command(e.m.ClientCPUs, e.self, "wsload", "-url", url, "-conns", strconv.Itoa(wsConns),
		"-size", strconv.Itoa(wsSize), "-duration", d.String(), "-warmup", "500ms", "-every", every.String())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done, err := e.reg.start(cmd)
	if err != nil {
		return wsResult{}, err
	}
	select {
	case err := <-done:
		if err != nil {
			return wsResult{}, fmt.Errorf("wsload: %w: %s", err, errb.String())
		}
	case <-ctx.Done():
		stopProcess(cmd, done, time.Second)
		return wsResult{}, ctx.Err()
	}
	var res wsResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return res, fmt.Errorf("wsload output %q: %w", out.String(), err)
	}
	return res, nil
}

// runWSLoad is the wsload command: conns websocket connections, each
// sending a size-byte text message and waiting for its echo, in a loop;
// round trips after the warm-up are timed. It prints one wsResult as JSON.
func runWSLoad(args []string) error {
	fs := flag.NewFlagSet("wsload", flag.ContinueOnError)
	url := fs.String("url", "", "ws:// URL of an echo endpoint")
	conns := fs.Int("conns", wsConns, "connections")
	size := fs.Int("size", wsSize, "message size in bytes")
	dur := fs.Duration("duration", 5*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 500*time.Millisecond, "unmeasured warm-up")
	every := fs.Duration("every", 0, "pace: one round trip per connection per this interval (0: back to back)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	msg := bytes.Repeat([]byte("x"), *size)
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}
	cs := make([]*websocket.Conn, *conns)
	for i := range cs {
		c, res, err := dialer.Dial(*url, nil)
		if err != nil {
			status := 0
			if res != nil {
				status = res.StatusCode
			}
			return fmt.Errorf("dial %s (status %d): %w", *url, status, err)
		}
		defer c.Close()
		cs[i] = c
	}
	start := time.Now()
	measureFrom, end := start.Add(*warmup), start.Add(*warmup+*dur)
	rtts := make([]sample, len(cs))
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rtts[i] = make(sample, 0, 1<<14)
			// Paced connections start spread over one interval.
			next := start.Add(*every * time.Duration(i) / time.Duration(len(cs)))
			for {
				if *every > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(*every)
				}
				t0 := time.Now()
				if t0.After(end) {
					return
				}
				if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
					errs[i] = err
					return
				}
				_, got, err := c.ReadMessage()
				if err != nil {
					errs[i] = err
					return
				}
				if len(got) != len(msg) {
					errs[i] = fmt.Errorf("echo of %d bytes, want %d", len(got), len(msg))
					return
				}
				if t0.After(measureFrom) {
					rtts[i] = append(rtts[i], time.Since(t0))
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var all sample
	for _, r := range rtts {
		all = append(all, r...)
	}
	s := all.summary()
	res := wsResult{RoundTrips: len(all), Rate: float64(len(all)) / dur.Seconds(),
		P50Ms: s.P50, P90Ms: s.P90, P99Ms: s.P99, MaxMs: s.Max}
	return json.NewEncoder(os.Stdout).Encode(res)
}
