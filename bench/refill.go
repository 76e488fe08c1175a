package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/engine"
)

// refillSize is the pool drained and refilled, and the number of
// containers the raw loop makes per trial.
const refillSize = 20

// refillResult is the refill scenario's figures.
type refillResult struct {
	SpawnConcurrency int `json:"daemonSpawnConcurrency"`
	// NBPoolSeconds are the daemon's refill times, one per round.
	NBPoolSeconds []float64 `json:"nbpoolSeconds"`
	// RawSeconds are the raw loop's times per concurrency, one per round.
	RawSeconds      map[int][]float64 `json:"rawSecondsByConcurrency"`
	BestConcurrency int               `json:"rawBestConcurrency"`
	NBPoolRate      float64           `json:"nbpoolContainersPerSecond"`
	RawRate         float64           `json:"rawContainersPerSecond"`
}

// runRefill drains a pool of refillSize (claims them all) and times until
// the daemon has refillSize ready again, against a plain
// create+start+probe loop over the engine at each concurrency, in
// alternating rounds.
func runRefill(ctx context.Context, e *env) ([]row, error) {
	d, err := startDaemon(ctx, e, "", 3*refillSize, e.fake)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	raw, err := newRawLoop(ctx, e)
	if err != nil {
		return nil, err
	}
	defer raw.close()

	binding := e.fake.Name
	if err := d.setPool(ctx, binding, refillSize); err != nil {
		return nil, err
	}
	res := refillResult{SpawnConcurrency: d.cfg.SpawnConcurrency, RawSeconds: map[int][]float64{}}
	concs := pick(e, []int{1, 2, 4, 8}, []int{4})
	for round := range pick(e, 3, 1) {
		took, err := drainRefill(ctx, d, binding)
		if err != nil {
			return nil, fmt.Errorf("nbpool refill: %w", err)
		}
		res.NBPoolSeconds = append(res.NBPoolSeconds, took.Seconds())
		logf("refill round %d: nbpool %d in %.2f s", round+1, refillSize, took.Seconds())
		for _, c := range concs {
			took, err := raw.trial(ctx, refillSize, c)
			if err != nil {
				return nil, fmt.Errorf("raw loop at concurrency %d: %w", c, err)
			}
			res.RawSeconds[c] = append(res.RawSeconds[c], took.Seconds())
			logf("refill round %d: raw loop %d at concurrency %d in %.2f s", round+1, refillSize, c, took.Seconds())
		}
	}
	res.NBPoolRate = refillSize / median(res.NBPoolSeconds)
	for c, s := range res.RawSeconds {
		if rate := refillSize / median(s); rate > res.RawRate {
			res.RawRate, res.BestConcurrency = rate, c
		}
	}
	e.details["refill"] = res
	name := fmt.Sprintf("refill of %d (daemon spawnConcurrency %d)", refillSize, res.SpawnConcurrency)
	base := fmt.Sprintf("raw loop at concurrency %d", res.BestConcurrency)
	return []row{ratioRow(name, "containers/s", res.NBPoolRate, res.RawRate, base, atLeast, 0.9, e.m.short()+", not pinned")}, nil
}

// drainRefill claims every available launch of a full pool at once (10
// clients) and returns the time from the first claim until the pool has
// refillSize available and none pending; then it stops the claimed
// launches, untimed.
func drainRefill(ctx context.Context, d *nbd, binding string) (time.Duration, error) {
	if err := d.waitPool(ctx, binding, refillSize, 2*time.Minute); err != nil {
		return 0, err
	}
	start := time.Now()
	var next atomic.Int64
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	errc := make(chan error, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= refillSize {
				l, _, err := d.Client.Spawn(ctx, binding, api.SpawnRequest{})
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				ids = append(ids, l.ID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return 0, err
	}
	if err := d.waitPool(ctx, binding, refillSize, 2*time.Minute); err != nil {
		return 0, err
	}
	took := time.Since(start)
	return took, stopAll(ctx, d, binding, ids)
}

// rawLoop creates, starts and probes fakenb containers with the engine
// package alone — the same Docker calls and container settings as the
// daemon, without pool, store or proxy — under an instance of its own.
type rawLoop struct {
	eng   *engine.Engine
	b     api.Binding
	inst  string
	probe *http.Client
	seq   atomic.Int64
}

func newRawLoop(ctx context.Context, e *env) (*rawLoop, error) {
	inst := "bench-" + randomHex(4) + "-raw"
	e.reg.instance(inst)
	eng, err := engine.New(ctx, engine.Options{Instance: inst, Network: benchNetwork, Log: zerolog.Nop()})
	if err != nil {
		return nil, err
	}
	if err := eng.EnsureNetwork(ctx); err != nil {
		eng.Close()
		return nil, err
	}
	return &rawLoop{eng: eng, b: e.fake, inst: inst,
		probe: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}}, nil
}

func (r *rawLoop) close() { r.eng.Close() }

// trial makes n ready containers with conc workers and returns the time;
// then it removes them, untimed.
func (r *rawLoop) trial(ctx context.Context, n, conc int) (time.Duration, error) {
	start := time.Now()
	var next atomic.Int64
	var mu sync.Mutex
	var ids []string
	var errs []error
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				id, err := r.one(ctx)
				mu.Lock()
				if id != "" {
					ids = append(ids, id)
				}
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	rmErr := eachOf8(ids, func(id string) error { return r.eng.Remove(context.WithoutCancel(ctx), id) })
	return took, errors.Join(append(errs, rmErr)...)
}

// one creates, starts and probes one container (GET api/status with the
// token every 10 ms until 200).
func (r *rawLoop) one(ctx context.Context) (string, error) {
	n := r.seq.Add(1)
	id := "raw" + strconv.FormatInt(n, 10)
	token := randomHex(16)
	base := "/user/" + id + "/"
	rep := strings.NewReplacer("{base_url}", base, "{token}", token, "{port}", strconv.Itoa(r.b.Port))
	cmd := make([]string, len(r.b.Command))
	for i, a := range r.b.Command {
		cmd[i] = rep.Replace(a)
	}
	mem, err := api.ParseMemory(r.b.Limits.Memory)
	if err != nil {
		return "", err
	}
	c, err := r.eng.Run(ctx, engine.Spec{
		Name: "nbpool-" + r.inst + "-" + id, Image: r.b.Image, Cmd: cmd, Binding: "raw", Launch: id,
		Memory: mem, NanoCPUs: int64(r.b.Limits.CPUs * 1e9), PidsLimit: r.b.Limits.Pids, Port: r.b.Port,
	})
	if err != nil {
		return "", err
	}
	url := "http://" + c.Address + base + r.b.Readiness.Path
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "token "+token)
		res, err := r.probe.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return c.ID, nil
			}
		}
		if time.Now().After(deadline) {
			return c.ID, fmt.Errorf("container %s not ready within 15s", id)
		}
		select {
		case <-ctx.Done():
			return c.ID, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
