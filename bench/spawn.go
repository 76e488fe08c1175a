package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nbpool/nbpool/api"
)

// spawnResult is one binding's figures in the spawn scenario.
type spawnResult struct {
	Binding string  `json:"binding"`
	Clients int     `json:"clients"`
	Round   int     `json:"roundSize"` // pool min: claims between refills
	Cold    summary `json:"coldSpawnToFirst200"`
	// Isolated are warm rounds with the pool's max at the round size, so
	// no refill (no Docker work) runs while the claims are timed.
	Isolated *warmResult `json:"warmWithoutRefill,omitempty"`
	warmResult
}

// warmResult is what warm rounds measured.
type warmResult struct {
	Claims int     `json:"claims"`
	Spawn  summary `json:"spawnToFirst200"`
	API    summary `json:"apiCallAlone"`
	// Retries counts claims whose first api/status request did not answer
	// 200 (0 means every first request did).
	Retries int64 `json:"statusRetries"`
	// ColdClaims counts claims that found no warm container (their API call
	// took over 250 ms); they are still timed.
	ColdClaims int64 `json:"coldClaims"`
}

// runSpawn measures warm spawns (POST /api/spawn/ to the first 200 of
// api/status through the proxy) against cold starts in the same daemon, on
// the fake and on the real Jupyter image.
func runSpawn(ctx context.Context, e *env) ([]row, error) {
	fakeRound := pick(e, 50, 15)
	jupRound := pick(e, 10, 3)
	d, err := startDaemon(ctx, e, "", 2*fakeRound+2*jupRound+10, e.fake, e.jupyter)
	if err != nil {
		return nil, err
	}
	defer d.stop()

	var rows []row
	var errs []error
	machine := e.m.short() + ", not pinned"
	for _, c := range []struct {
		b                             api.Binding
		label                         string
		total, isolated, round, colds int
		within                        time.Duration
	}{
		{e.fake, "fakenb", pick(e, 500, 30), pick(e, 200, 0), fakeRound, pick(e, 20, 3), 2 * time.Minute},
		{e.jupyter, "jupyter", pick(e, 50, 3), 0, jupRound, pick(e, 5, 1), 5 * time.Minute},
	} {
		res, err := measureSpawn(ctx, d, c.b.Name, c.total, c.isolated, c.round, min(10, c.round), c.colds, c.within)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.label, err))
			rows = append(rows, failedRow("warm spawn ("+c.label+")", err, machine))
			continue
		}
		e.details["spawn-"+c.label] = res
		logf("spawn %s: warm p50 %.1f ms p99 %.1f ms, API p99 %.2f ms, cold p50 %.0f ms", c.label,
			res.Spawn.P50, res.Spawn.P99, res.API.P99, res.Cold.P50)
		rows = append(rows, spawnRows(c.label, res, machine)...)
	}
	return rows, errors.Join(errs...)
}

// spawnRows turns a spawn result into its rows.
func spawnRows(label string, res spawnResult, machine string) []row {
	name := fmt.Sprintf("warm spawn, %s (%d claims, %d clients)", label, res.Claims, res.Clients)
	p50 := ratioRow(name+": p50", "ms", res.Spawn.P50, res.Cold.P50, "cold p50", atMost, 0, machine)
	p99 := ratioRow(name+": p99", "ms", res.Spawn.P99, res.Cold.P50, "cold p50", atMost, 0.05, machine)
	ok := p99.Met != nil && *p99.Met && res.Spawn.P99 <= 50
	p99.Met = &ok
	p99.Target = "≤ 50 ms and ≤ 0.05×"
	apiRow := absRow(fmt.Sprintf("spawn API call alone, %s: p99", label), "ms", res.API.P99, nanBase,
		"", atMost, 10, machine)
	rows := []row{p50, p99, apiRow}
	if iso := res.Isolated; iso != nil {
		name := fmt.Sprintf("warm spawn, %s, no refill during the round (%d claims)", label, iso.Claims)
		rows = append(rows,
			absRow(name+": p99", "ms", iso.Spawn.P99, nanBase, "", atMost, 0, machine),
			absRow(name+": API call alone p99", "ms", iso.API.P99, nanBase, "", atMost, 0, machine))
	}
	return rows
}

// measureSpawn runs warm rounds (see warmRounds), then, if isolated > 0,
// that many claims in rounds without refill, then colds cold starts one at
// a time on an empty pool.
func measureSpawn(ctx context.Context, d *nbd, binding string, total, isolated, round, clients, colds int, within time.Duration) (spawnResult, error) {
	res := spawnResult{Binding: binding, Clients: clients, Round: round}
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	user := &api.Client{BaseURL: d.URL, HTTP: hc} // a visitor: no token

	var err error
	if res.warmResult, err = warmRounds(ctx, d, user, hc, binding, total, round, clients, within); err != nil {
		return res, err
	}
	if isolated > 0 {
		if _, err := d.Client.SetPool(ctx, binding, api.PoolUpdate{MinPool: &round, MaxPool: &round}); err != nil {
			return res, err
		}
		iso, err := warmRounds(ctx, d, user, hc, binding, isolated, round, clients, within)
		if err != nil {
			return res, fmt.Errorf("without refill: %w", err)
		}
		res.Isolated = &iso
		unbounded := 0
		if _, err := d.Client.SetPool(ctx, binding, api.PoolUpdate{MaxPool: &unbounded}); err != nil {
			return res, err
		}
	}

	// Cold starts: an empty pool, one visitor at a time.
	if err := d.setPool(ctx, binding, 0); err != nil {
		return res, err
	}
	if err := d.waitPool(ctx, binding, 0, within); err != nil {
		return res, err
	}
	var cold sample
	var retries atomic.Int64
	for range colds {
		t, id, err := spawnOnce(ctx, user, hc, d.URL, binding, &retries)
		if err != nil {
			return res, fmt.Errorf("cold start: %w", err)
		}
		cold = append(cold, t.total)
		if err := stopAll(ctx, d, binding, []string{id}); err != nil {
			return res, err
		}
	}
	res.Cold = cold.summary()
	return res, nil
}

// warmRounds runs rounds of `round` claims by `clients` clients until total
// claims are done; the pool (min = round) refills between rounds, untimed,
// after the claimed launches are stopped.
func warmRounds(ctx context.Context, d *nbd, user *api.Client, hc *http.Client, binding string, total, round, clients int, within time.Duration) (warmResult, error) {
	res := warmResult{Claims: total}
	if err := d.setPool(ctx, binding, round); err != nil {
		return res, err
	}
	var warm, apiTimes sample
	var mu sync.Mutex
	var retries, coldClaims atomic.Int64
	for done := 0; done < total; {
		n := min(round, total-done)
		if err := d.waitPool(ctx, binding, round, within); err != nil {
			return res, err
		}
		var next atomic.Int64
		var ids []string
		var wg sync.WaitGroup
		errc := make(chan error, clients)
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) {
					t, id, err := spawnOnce(ctx, user, hc, d.URL, binding, &retries)
					if err != nil {
						errc <- err
						return
					}
					if t.cold {
						coldClaims.Add(1)
					}
					mu.Lock()
					warm = append(warm, t.total)
					apiTimes = append(apiTimes, t.api)
					ids = append(ids, id)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errc)
		if err := <-errc; err != nil {
			return res, err
		}
		if err := stopAll(ctx, d, binding, ids); err != nil {
			return res, err
		}
		done += n
	}
	res.Spawn, res.API = warm.summary(), apiTimes.summary()
	res.Retries, res.ColdClaims = retries.Load(), coldClaims.Load()
	return res, nil
}

// spawnTiming is one claim's times.
type spawnTiming struct {
	api, total time.Duration
	cold       bool
}

// coldAfter is the API time beyond which a claim counts as cold (a warm
// claim is a pop and a store transaction).
const coldAfter = 250 * time.Millisecond

// spawnOnce POSTs /api/spawn/ for binding as a visitor, then GETs
// api/status through the proxy with the launch token until it answers 200.
func spawnOnce(ctx context.Context, user *api.Client, hc *http.Client, base, binding string, retries *atomic.Int64) (spawnTiming, string, error) {
	start := time.Now()
	sp, err := user.TmpnbSpawn(ctx, api.TmpnbSpawnRequest{Binding: binding})
	if err != nil {
		return spawnTiming{}, "", fmt.Errorf("POST /api/spawn/: %w", err)
	}
	t := spawnTiming{api: time.Since(start)}
	t.cold = t.api > coldAfter
	id, token, err := parseLaunchURL(sp.URL)
	if err != nil {
		return t, "", err
	}
	status := base + "/user/" + id + "/api/status?token=" + url.QueryEscape(token)
	for attempt := 0; ; attempt++ {
		code, err := get(ctx, hc, status)
		if err == nil && code == http.StatusOK {
			break
		}
		if attempt == 0 {
			retries.Add(1)
		}
		if time.Since(start) > time.Minute {
			return t, id, fmt.Errorf("api/status of %s: no 200 within a minute (last: %d %v)", id, code, err)
		}
		time.Sleep(time.Millisecond)
	}
	t.total = time.Since(start)
	return t, id, nil
}

// parseLaunchURL reads id and token from "/user/<id>/tree?token=…".
func parseLaunchURL(raw string) (id, token string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("launch URL %q: %w", raw, err)
	}
	rest, ok := strings.CutPrefix(u.Path, "/user/")
	id, _, _ = strings.Cut(rest, "/")
	token = u.Query().Get("token")
	if !ok || id == "" || token == "" {
		return "", "", fmt.Errorf("launch URL %q: want /user/<id>/…?token=…", raw)
	}
	return id, token, nil
}

// get GETs url and drains the body.
func get(ctx context.Context, hc *http.Client, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	res, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// stopAll stops launches through the admin API, 8 at a time.
func stopAll(ctx context.Context, d *nbd, binding string, ids []string) error {
	return eachOf8(ids, func(id string) error {
		if _, err := d.Client.StopLaunch(ctx, binding, id); err != nil {
			return fmt.Errorf("stop %s: %w", id, err)
		}
		return nil
	})
}
