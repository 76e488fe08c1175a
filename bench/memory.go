package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nbpool/nbpool/api"
)

// memPool is the warm pool kept during the memory scenario (and at idle).
const memPool = 10

// memorySample is the daemon's memory at one moment.
type memorySample struct {
	RSS     int64 `json:"rssBytes"`
	RSSAnon int64 `json:"rssAnonBytes"`
	RSSFile int64 `json:"rssFileBytes"` // the store's mmap among others
	// From the daemon's /metrics, when it answers.
	HeapInuse  int64 `json:"goHeapInuseBytes,omitempty"`
	HeapLive   int64 `json:"goHeapLiveBytes,omitempty"` // marked live by the last GC
	Goroutines int64 `json:"goroutines,omitempty"`
}

// memoryResult is the memory scenario's figures.
type memoryResult struct {
	Idle          memorySample         `json:"idle"`
	Live          int                  `json:"liveLaunches"`
	WithLive      memorySample         `json:"withLiveLaunches"`
	PerLaunchKiB  float64              `json:"perLiveLaunchKiB"`
	Cycles        int                  `json:"cycles"`
	ByCycle       map[int]memorySample `json:"byCycle"`
	CycleSeconds  float64              `json:"cyclesSeconds"`
	GrowthPercent float64              `json:"growthPercentFromTenthToLast"`
}

// runMemory measures the daemon's RSS at idle, with live claimed launches
// holding one websocket each through the proxy, and over claim/stop
// cycles. Between the two it runs the reconcile scenario on the launches
// left, so their containers are made once.
func runMemory(ctx context.Context, e *env) ([]row, error) {
	live := pick(e, 200, 30)
	reconcileN := pick(e, 100, 30)
	cycles := pick(e, 1000, 40)
	d, err := startDaemon(ctx, e, "", live+3*memPool, e.fake)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	binding := e.fake.Name
	machine := e.m.short() + ", not pinned"
	res := memoryResult{Live: live, Cycles: cycles, ByCycle: map[int]memorySample{}}

	// settled samples memory once the pool is full and the daemon has been
	// quiet a moment.
	settled := func() (memorySample, error) {
		if err := d.waitPool(ctx, binding, memPool, 2*time.Minute); err != nil {
			return memorySample{}, err
		}
		time.Sleep(pick(e, 2*time.Second, time.Second))
		return sampleMemory(ctx, d)
	}
	if err := d.setPool(ctx, binding, memPool); err != nil {
		return nil, err
	}
	if res.Idle, err = settled(); err != nil {
		return nil, err
	}

	// Live launches, one websocket each, through the proxy.
	launches, err := claimMany(ctx, d, binding, live, 8)
	if err != nil {
		return nil, fmt.Errorf("claim %d: %w", live, err)
	}
	conns, err := holdWebsockets(ctx, d, launches)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	if res.WithLive, err = settled(); err != nil {
		return nil, err
	}
	res.PerLaunchKiB = float64(res.WithLive.RSS-res.Idle.RSS) / float64(live) / 1024
	logf("memory: idle %.1f MiB, with %d live launches + websockets %.1f MiB (%.1f KiB each)",
		mib(res.Idle.RSS), live, mib(res.WithLive.RSS), res.PerLaunchKiB)
	for _, c := range conns {
		c.Close()
	}
	conns = nil

	rows := []row{
		absRow("memory: daemon RSS at idle (pool of 10)", "MiB", mib(res.Idle.RSS), nanBase, "", atMost, 0, machine),
		absRow(fmt.Sprintf("memory: RSS per live launch (%d claimed, 1 websocket each)", live), "KiB",
			res.PerLaunchKiB, nanBase, fmt.Sprintf("idle %.1f MiB → %.1f MiB", mib(res.Idle.RSS), mib(res.WithLive.RSS)),
			atMost, 64, machine),
	}

	// Reconcile on reconcileN of the claimed launches.
	recRows, err := runReconcile(ctx, e, d, binding, launches, reconcileN)
	rows = append(rows, recRows...)
	if err != nil {
		e.details["memory"] = res
		return rows, fmt.Errorf("reconcile: %w", err)
	}

	// Claim/stop cycles.
	if err := d.setPool(ctx, binding, memPool); err != nil {
		return rows, err
	}
	if err := d.waitPool(ctx, binding, memPool, 2*time.Minute); err != nil {
		return rows, err
	}
	if err := claimStopCycles(ctx, d, binding, cycles, &res); err != nil {
		e.details["memory"] = res
		return rows, fmt.Errorf("cycles: %w", err)
	}
	first, last := res.ByCycle[cycles/10], res.ByCycle[cycles]
	res.GrowthPercent = (float64(last.RSS)/float64(first.RSS) - 1) * 100
	e.details["memory"] = res
	logf("memory: after %d cycles %.1f MiB, after %d %.1f MiB (%+.1f%%)", cycles/10, mib(first.RSS), cycles,
		mib(last.RSS), res.GrowthPercent)
	rows = append(rows, ratioRow(fmt.Sprintf("memory: RSS after %d claim/stop cycles vs after %d", cycles, cycles/10),
		"MiB", mib(last.RSS), mib(first.RSS), fmt.Sprintf("after %d", cycles/10), atMost, 1.05, machine),
		// The file-backed part holds the store's mmap, which grows with the
		// launch history (kept for history.retention); the anonymous part
		// is the heap, stacks and buffers.
		ratioRow(fmt.Sprintf("memory: anonymous RSS (no store mmap) after %d cycles vs after %d", cycles, cycles/10),
			"MiB", mib(last.RSSAnon), mib(first.RSSAnon), fmt.Sprintf("after %d", cycles/10), atMost, 0, machine),
		// What the Go runtime itself holds live: a leak of launches,
		// routes or goroutines would show here first.
		ratioRow(fmt.Sprintf("memory: Go live heap after %d cycles vs after %d", cycles, cycles/10),
			"MiB", mib(last.HeapLive), mib(first.HeapLive), fmt.Sprintf("after %d", cycles/10), atMost, 0, machine),
		ratioRow(fmt.Sprintf("memory: goroutines after %d cycles vs after %d", cycles, cycles/10),
			"goroutines", float64(last.Goroutines), float64(first.Goroutines), fmt.Sprintf("after %d", cycles/10), atMost, 0, machine))
	return rows, nil
}

// nanBase marks a row without a baseline figure.
var nanBase = func() float64 { var z float64; return z / z }()

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// metricsClient reads /metrics; a daemon that hangs must not hang the run.
var metricsClient = &http.Client{Timeout: 10 * time.Second}

// sampleMemory reads the daemon's RSS and a few runtime figures.
func sampleMemory(ctx context.Context, d *nbd) (memorySample, error) {
	m, err := d.Mem()
	if err != nil {
		return memorySample{}, err
	}
	s := memorySample{RSS: m.RSS, RSSAnon: m.Anon, RSSFile: m.File}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.URL+"/metrics", nil)
	req.Header.Set("Authorization", "token "+adminToken)
	if res, err := metricsClient.Do(req); err == nil {
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			name, v, ok := strings.Cut(sc.Text(), " ")
			if !ok {
				continue
			}
			f, _ := strconv.ParseFloat(v, 64)
			switch name {
			case "go_memstats_heap_inuse_bytes":
				s.HeapInuse = int64(f)
			case "go_gc_heap_live_bytes":
				s.HeapLive = int64(f)
			case "go_goroutines":
				s.Goroutines = int64(f)
			}
		}
		res.Body.Close()
	}
	return s, nil
}

// claimMany claims n launches with conc clients.
func claimMany(ctx context.Context, d *nbd, binding string, n, conc int) ([]api.Launch, error) {
	var next atomic.Int64
	var mu sync.Mutex
	var out []api.Launch
	var errs []error
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				l, err := d.claim(ctx, binding)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					out = append(out, l)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// holdWebsockets opens one websocket per launch through the proxy and
// checks it with one echo.
func holdWebsockets(ctx context.Context, d *nbd, ls []api.Launch) ([]*websocket.Conn, error) {
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	base := "ws" + strings.TrimPrefix(d.URL, "http")
	var conns []*websocket.Conn
	for _, l := range ls {
		c, _, err := dialer.DialContext(ctx, base+l.Location+"api/kernels/mem/channels?token="+l.Token, nil)
		if err != nil {
			return conns, fmt.Errorf("websocket to %s: %w", l.ID, err)
		}
		conns = append(conns, c)
		if err := c.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
			return conns, err
		}
		if _, _, err := c.ReadMessage(); err != nil {
			return conns, fmt.Errorf("echo on %s: %w", l.ID, err)
		}
	}
	return conns, nil
}

// claimStopCycles claims and stops n launches, 4 clients at a time (a
// claim on an empty pool waits for a cold start), sampling memory at every
// tenth of the way.
func claimStopCycles(ctx context.Context, d *nbd, binding string, n int, res *memoryResult) error {
	user := &api.Client{BaseURL: d.URL, HTTP: &http.Client{}}
	var next, done atomic.Int64
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	step := int64(max(n/10, 1))
	start := time.Now()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				err := func() error {
					sp, err := user.TmpnbSpawn(ctx, api.TmpnbSpawnRequest{Binding: binding})
					if err != nil {
						return err
					}
					id, _, err := parseLaunchURL(sp.URL)
					if err != nil {
						return err
					}
					_, err = d.Client.StopLaunch(ctx, binding, id)
					return err
				}()
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				if k := done.Add(1); k%step == 0 {
					s, err := sampleMemory(ctx, d)
					mu.Lock()
					if err == nil {
						res.ByCycle[int(k)] = s
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	res.CycleSeconds = time.Since(start).Seconds()
	return errors.Join(errs...)
}
