package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/engine"
)

// watchEngine follows the engine's container events, starting with the
// stream evs and errs, until ctx ends: a managed container that dies, is
// OOM-killed or destroyed ends its launch at once, and one that is created
// or started for no live launch is removed. When the stream breaks (the
// engine went away) it marks the engine down, so cold starts answer
// engineUnavailable, retries with backoff, and on reconnect resyncs the
// pools with the engine's containers.
func (d *daemon) watchEngine(ctx context.Context, evs <-chan engine.Event, errs <-chan error) {
	log := d.log.With().Str("component", "events").Logger()
	delay := 250 * time.Millisecond
	down := false
	for ctx.Err() == nil {
		if evs == nil {
			evs, errs = d.eng.Events(ctx)
		}
		if err := d.eng.Ping(ctx); err == nil {
			if down {
				// Resync before spawning again: no new launch can race the
				// comparison.
				log.Info().Msg("engine is back: resyncing")
				d.resync(ctx)
				d.pools.SetEngineError(nil)
				down = false
			}
			delay = 250 * time.Millisecond
		}
		for ev := range evs {
			d.onEvent(ctx, ev)
		}
		err := <-errs
		evs, errs = nil, nil
		if ctx.Err() != nil {
			return
		}
		d.stats.engineErrors.Inc()
		if !down {
			log.Warn().Err(err).Msg("engine event stream broke; retrying")
			down = true
		}
		if !errors.Is(err, engine.ErrUnavailable) {
			err = fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
		}
		d.pools.SetEngineError(err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 15*time.Second)
	}
}

// onEvent ends the launch of a container that died, and removes a container
// that no live launch owns (a launch is live from before its container is
// created until after it is removed, so such a container is a leftover: a
// creation that completed after its launch ended, or after a crash).
func (d *daemon) onEvent(ctx context.Context, ev engine.Event) {
	var reason string
	switch ev.Action {
	case "oom":
		reason = api.EndOOM
	case "die", "destroy":
		reason = api.EndDied
	case "create", "start":
		if _, live := d.pools.Get(ev.Launch); live {
			return
		}
		// Often its end removed it already (the event came late): say so
		// only when this removal is the one that counts.
		if _, err := d.eng.Inspect(ctx, ev.ContainerID); errors.Is(err, engine.ErrNotFound) {
			return
		}
		err := d.eng.Remove(ctx, ev.ContainerID)
		d.log.Info().Err(err).Str("launch", ev.Launch).Str("binding", ev.Binding).
			Str("container", ev.ContainerID).Msg("removed a container no live launch owns")
		return
	default:
		return
	}
	if ev.Launch == "" {
		return
	}
	if d.pools.ContainerDied(ctx, ev.Launch, reason, ev.ExitCode) {
		d.log.Info().Str("launch", ev.Launch).Str("binding", ev.Binding).Str("reason", reason).
			Int("exitCode", ev.ExitCode).Msg("container ended its launch")
	}
}

// resync compares the live launches with the engine's containers after the
// engine came back.
func (d *daemon) resync(ctx context.Context) {
	listed := time.Now()
	cs, err := d.eng.List(ctx)
	if err != nil {
		d.log.Warn().Err(err).Msg("resync: list containers")
		return
	}
	rep := d.pools.Resync(ctx, cs, listed)
	d.log.Info().Int("ended", rep.Ended).Int("removed", rep.Removed).Msg("resynced with the engine")
}
