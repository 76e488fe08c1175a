package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/engine"
)

// reconcileResult is the reconcile scenario's figures, in milliseconds.
type reconcileResult struct {
	Containers int       `json:"containers"`
	Reconciles []float64 `json:"reconcileMs"`   // the daemon's "reconciled took"
	Ready      []float64 `json:"readyMs"`       // exec to READY=1
	Bare       []float64 `json:"listInspectMs"` // list + inspect each, sequential
}

// runReconcile keeps n of the claimed launches (and no pool), then, in
// rounds: stops the daemon (containers stay), times a bare list+inspect of
// the instance's containers, starts the daemon and reads how long its
// reconcile took; after each start one launch must answer through the
// proxy with its old token.
func runReconcile(ctx context.Context, e *env, d *nbd, binding string, launches []api.Launch, n int) ([]row, error) {
	machine := e.m.short() + ", not pinned"
	name := fmt.Sprintf("reconcile at restart, %d containers", n)
	fail := func(err error) ([]row, error) { return []row{failedRow(name, err, machine)}, err }
	if len(launches) < n {
		return fail(fmt.Errorf("only %d launches", len(launches)))
	}
	keep := launches[:n]
	var extra []string
	for _, l := range launches[n:] {
		extra = append(extra, l.ID)
	}
	if err := stopAll(ctx, d, binding, extra); err != nil {
		return fail(err)
	}
	if err := d.setPool(ctx, binding, 0); err != nil {
		return fail(err)
	}
	if err := d.waitPool(ctx, binding, 0, time.Minute); err != nil {
		return fail(err)
	}
	eng, err := engine.New(ctx, engine.Options{Instance: d.cfg.Instance, Network: benchNetwork, Log: zerolog.Nop()})
	if err != nil {
		return fail(err)
	}
	defer eng.Close()
	// A shrunk pool's containers are removed after the pool answers 0.
	if err := waitContainers(ctx, eng, n, time.Minute); err != nil {
		return fail(err)
	}

	res := reconcileResult{Containers: n}
	probe := d.URL + keep[0].Location + "api/status?token=" + keep[0].Token
	for round := range pick(e, 3, 1) {
		d.stop()
		bare, count, err := listInspect(ctx, eng)
		if err != nil {
			return fail(err)
		}
		if count != n {
			return fail(fmt.Errorf("%d containers of the instance, want %d", count, n))
		}
		if err := d.start(ctx); err != nil {
			return fail(err)
		}
		took, err := d.lastReconcile()
		if err != nil {
			return fail(err)
		}
		code, err := get(ctx, http.DefaultClient, probe)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d", code)
		}
		if err != nil {
			return fail(fmt.Errorf("launch %s through the proxy after restart: %w", keep[0].ID, err))
		}
		p, err := d.Client.GetPool(ctx, binding)
		if err != nil {
			return fail(err)
		}
		if p.Running != n {
			return fail(fmt.Errorf("after restart %d claimed launches, want %d", p.Running, n))
		}
		res.Reconciles = append(res.Reconciles, ms(took))
		res.Ready = append(res.Ready, ms(d.Ready))
		res.Bare = append(res.Bare, ms(bare))
		logf("reconcile round %d: %d containers in %.1f ms (READY after %.0f ms); list+inspect %.1f ms",
			round+1, n, ms(took), ms(d.Ready), ms(bare))
	}
	e.details["reconcile"] = res
	r := ratioRow(name, "ms", median(res.Reconciles), median(res.Bare), "list+inspect", atMost, 1.5, machine)
	ok := r.Met != nil && *r.Met && median(res.Reconciles) <= 2000
	r.Met, r.Target = &ok, "≤ 1.5× and ≤ 2 s"

	// The launches go with the rest of the instance at cleanup; stop them
	// here so the cycles start from a daemon with no claimed launches.
	var ids []string
	for _, l := range keep {
		ids = append(ids, l.ID)
	}
	return []row{r}, stopAll(ctx, d, binding, ids)
}

// listInspect lists the instance's containers and inspects each one in
// turn, as a bare reconcile would, and returns the time and the count.
func listInspect(ctx context.Context, eng *engine.Engine) (time.Duration, int, error) {
	start := time.Now()
	cs, err := eng.List(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, c := range cs {
		if _, err := eng.Inspect(ctx, c.ID); err != nil {
			return 0, 0, err
		}
	}
	return time.Since(start), len(cs), nil
}

// waitContainers waits until the instance has n containers.
func waitContainers(ctx context.Context, eng *engine.Engine, n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		cs, err := eng.List(ctx)
		if err == nil && len(cs) == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("instance has %d containers after %s, want %d (err %v)", len(cs), within, n, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
