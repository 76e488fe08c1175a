package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/engine"
)

// watchEngine follows the engine's container events until ctx ends: a
// managed container that dies, is OOM-killed or destroyed ends its launch at
// once. When the stream breaks (the engine went away) it marks the engine
// down, so cold starts answer engineUnavailable, retries with backoff, and on
// reconnect resyncs the pools with the engine's containers.
func (d *daemon) watchEngine(ctx context.Context) {
	log := d.log.With().Str("component", "events").Logger()
	delay := 250 * time.Millisecond
	down := false
	for ctx.Err() == nil {
		evs, errs := d.eng.Events(ctx)
		if err := d.eng.Ping(ctx); err == nil {
			if down {
				log.Info().Msg("engine is back: resyncing")
				d.pools.SetEngineError(nil)
				d.resync(ctx)
				down = false
			}
			delay = 250 * time.Millisecond
		}
		for ev := range evs {
			d.onEvent(ctx, ev)
		}
		err := <-errs
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

// onEvent ends the launch of a container that died.
func (d *daemon) onEvent(ctx context.Context, ev engine.Event) {
	var reason string
	switch ev.Action {
	case "oom":
		reason = api.EndOOM
	case "die", "destroy":
		reason = api.EndDied
	default:
		return
	}
	if ev.Launch == "" {
		return
	}
	if _, err := d.pools.End(ctx, ev.Launch, reason); err == nil {
		d.log.Info().Str("launch", ev.Launch).Str("binding", ev.Binding).Str("reason", reason).
			Int("exitCode", ev.ExitCode).Msg("container ended its launch")
	}
}

// resync compares the live launches with the engine's containers after the
// engine came back.
func (d *daemon) resync(ctx context.Context) {
	cs, err := d.eng.List(ctx)
	if err != nil {
		d.log.Warn().Err(err).Msg("resync: list containers")
		return
	}
	rep := d.pools.Resync(ctx, cs)
	d.log.Info().Int("ended", rep.Ended).Int("removed", rep.Removed).Msg("resynced with the engine")
}
