package pool

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/nbpool/nbpool/api"
)

// ActivitySource tells when a launch last had proxied traffic.
type ActivitySource interface {
	LastActivity(id string) (time.Time, bool)
}

// Culler ends claimed launches that have been idle for their binding's
// idleTimeout or claimed for longer than its maxAge. The idle clock starts at
// the claim. Available (unclaimed) containers are never culled.
type Culler struct {
	Pools    *Manager
	Activity ActivitySource
	// Defaults apply where a binding sets no cull values.
	Defaults api.Cull
	// Period is how often the culler looks.
	Period time.Duration
	Log    zerolog.Logger
}

// Run culls every Period until ctx ends.
func (c *Culler) Run(ctx context.Context) error {
	t := time.NewTicker(c.Period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			c.Cull(ctx, now)
		}
	}
}

// Cull ends the launches due at now and returns how many it ended.
func (c *Culler) Cull(ctx context.Context, now time.Time) int {
	n := 0
	for _, l := range c.Pools.List("") {
		if l.State != api.StateClaimed {
			continue
		}
		b, ok := c.Pools.Binding(l.Binding)
		if !ok {
			continue
		}
		limits := c.limits(b.Cull)
		reason := c.due(l, limits, now)
		if reason == "" {
			continue
		}
		// Decide again under the manager's lock: traffic may have come in.
		_, ended := c.Pools.EndIf(ctx, l.ID, reason, func(cur api.Launch) bool {
			return cur.State != api.StateClaimed || c.due(cur, limits, now) != reason
		})
		if ended {
			n++
			c.Log.Info().Str("launch", l.ID).Str("binding", l.Binding).Str("reason", reason).Msg("culled")
		}
	}
	return n
}

// limits merges a binding's cull values over the defaults.
func (c *Culler) limits(b api.Cull) api.Cull {
	if b.IdleTimeout == 0 {
		b.IdleTimeout = c.Defaults.IdleTimeout
	}
	if b.MaxAge == 0 {
		b.MaxAge = c.Defaults.MaxAge
	}
	return b
}

// due returns the reason a claimed launch should end at now, or "".
func (c *Culler) due(l api.Launch, limits api.Cull, now time.Time) string {
	if limits.MaxAge > 0 && now.Sub(l.Claimed) >= limits.MaxAge.D() {
		return api.EndCulledAge
	}
	last := l.Claimed
	if l.LastActivity.After(last) {
		last = l.LastActivity
	}
	if c.Activity != nil {
		if t, ok := c.Activity.LastActivity(l.ID); ok && t.After(last) {
			last = t
		}
	}
	if limits.IdleTimeout > 0 && now.Sub(last) >= limits.IdleTimeout.D() {
		return api.EndCulledIdle
	}
	return ""
}
