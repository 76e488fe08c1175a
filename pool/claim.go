package pool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/proxy"
)

// Claim hands out a launch of the binding. With a warm container it returns
// the claimed launch and cold=false. Otherwise it reserves a container being
// created, or starts one, and returns the warming launch with cold=true: the
// caller follows it with Watch or Wait. path, if set, replaces the binding's
// redirect in the launch's URL.
//
// Errors: ErrNoBinding, ErrFull, ErrClosed, ErrBackoff, the engine's
// unavailability, or the image error of a binding whose image cannot be had.
func (m *Manager) Claim(ctx context.Context, binding, path string) (l api.Launch, cold bool, err error) {
	start := time.Now()
	for {
		m.mu.Lock()
		p := m.pools[binding]
		switch {
		case m.closed:
			m.mu.Unlock()
			return api.Launch{}, false, ErrClosed
		case p == nil || p.deleted:
			m.mu.Unlock()
			return api.Launch{}, false, fmt.Errorf("claim on %s: %w", binding, ErrNoBinding)
		}
		if len(p.available) == 0 {
			return m.claimCold(ctx, p, path) // unlocks
		}
		ln := p.available[0]
		p.available[0] = nil
		p.available = p.available[1:]
		ln.where = api.StateClaimed
		p.claimed++
		id, url, reserved := ln.rec.ID, ln.claimURL(path), ln.rec.Reserved
		m.mu.Unlock()
		m.Kick()
		rec, err := m.claim(ctx, ln, id, url, reserved, true)
		if errors.Is(err, errEnded) {
			continue // ended under us (its container died): take the next
		}
		if err != nil {
			return api.Launch{}, false, err
		}
		m.observeClaim(binding, false, start)
		return rec, false, nil
	}
}

// claimCold reserves a warming launch nobody waits for yet, or starts one.
// Callers hold m.mu; it unlocks.
func (m *Manager) claimCold(ctx context.Context, p *pool, path string) (api.Launch, bool, error) {
	for _, ln := range p.warming {
		if !ln.rec.Reserved {
			ln.rec.Reserved = true
			ln.rec.URL = launchURL(ln.rec.ID, ln.rec.Token, p.binding.Redirect, path)
			rec := ln.rec
			ln.notify()
			m.mu.Unlock()
			m.persistReserved(ctx, rec)
			return rec, true, nil
		}
	}
	if err := m.canStart(p); err != nil {
		m.mu.Unlock()
		return api.Launch{}, false, fmt.Errorf("claim on %s: %w", p.binding.Name, err)
	}
	ln := m.newLaunchLocked(p, true)
	ln.rec.URL = launchURL(ln.rec.ID, ln.rec.Token, p.binding.Redirect, path)
	rec := ln.rec
	m.mu.Unlock()
	if err := m.startCreate(ctx, ln); err != nil {
		return api.Launch{}, false, err
	}
	return rec, true, nil
}

// canStart says whether a new container may be started for p. Callers hold
// m.mu.
func (m *Manager) canStart(p *pool) error {
	if m.engErr != nil {
		return m.engErr
	}
	if time.Now().Before(p.backoffUntil) {
		if isImageError(p.lastCause) {
			return p.lastCause
		}
		return fmt.Errorf("%w until %s: %v", ErrBackoff, p.backoffUntil.Format(time.TimeOnly), p.lastCause)
	}
	if m.liveLocked() >= m.opts.Capacity {
		return fmt.Errorf("%w: capacity %d reached", ErrFull, m.opts.Capacity)
	}
	if p.size.Max > 0 && p.live() >= p.size.Max {
		return fmt.Errorf("%w: binding %s has its maximum of %d", ErrFull, p.binding.Name, p.size.Max)
	}
	return nil
}

// errEnded: the launch being claimed ended meanwhile.
var errEnded = errors.New("launch ended while being claimed")

// claimURL is the URL ln is claimed with: path, or an empty URL, sets it; a
// cold start keeps the URL it was reserved with. Callers hold m.mu.
func (ln *launch) claimURL(path string) string {
	if path == "" && ln.rec.URL != "" {
		return ln.rec.URL
	}
	return launchURL(ln.rec.ID, ln.rec.Token, ln.pool.binding.Redirect, path)
}

// claim stores the claim of ln (id), already counted as claimed by the
// caller, which read id, url (claimURL) and reserved under that same lock.
// It then registers the route and makes the launch claimed in public, in
// one critical section: a reader that sees the state claimed can open the
// URL. When the store refuses, a warm launch goes back to the front of the
// queue (requeue) and a cold one ends as failed: nobody else may get it.
func (m *Manager) claim(ctx context.Context, ln *launch, id, url string, reserved, requeue bool) (api.Launch, error) {
	now := time.Now().UTC()
	_, err := m.opts.Store.UpdateLaunch(ctx, id, func(s *api.Launch) error {
		s.State, s.Claimed, s.LastActivity, s.URL, s.Phase = api.StateClaimed, now, now, url, "ready"
		s.Reserved = reserved
		return nil
	})

	m.mu.Lock()
	p := ln.pool
	if ln.ended {
		m.mu.Unlock()
		return api.Launch{}, fmt.Errorf("launch %s: %w", id, errEnded)
	}
	if err != nil {
		err = fmt.Errorf("record claim of %s: %w", id, err)
		if requeue {
			ln.where = api.StateAvailable
			p.claimed--
			p.available = append([]*launch{ln}, p.available...)
			m.mu.Unlock()
			return api.Launch{}, err
		}
		m.unlinkLocked(ln)
		m.mu.Unlock()
		m.finish(ctx, ln, api.EndFailed, err.Error())
		return api.Launch{}, err
	}
	defer m.mu.Unlock()
	ln.rec.State, ln.rec.Claimed, ln.rec.LastActivity, ln.rec.URL, ln.rec.Phase = api.StateClaimed, now, now, url, "ready"
	// The route is added under the lock (a map write, no I/O) so that an End
	// racing with this claim cannot leave a route behind.
	m.opts.Router.Add(proxy.Route{ID: id, Binding: ln.rec.Binding, Target: ln.rec.Address, Token: ln.rec.Token})
	ln.notify()
	return ln.rec, nil
}

// persistReserved records that a warming launch is now reserved for a
// visitor. A failure only loses the mark, which the launch carries in memory.
func (m *Manager) persistReserved(ctx context.Context, rec api.Launch) {
	_, err := m.opts.Store.UpdateLaunch(ctx, rec.ID, func(s *api.Launch) error {
		s.Reserved, s.URL = true, rec.URL
		return nil
	})
	if err != nil {
		m.log.Warn().Err(err).Str("launch", rec.ID).Str("binding", rec.Binding).Msg("record reservation")
	}
}

// Get returns a live launch.
func (m *Manager) Get(id string) (api.Launch, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ln := m.launches[id]
	if ln == nil {
		return api.Launch{}, false
	}
	return ln.rec, true
}

// Watch returns a live launch and a channel closed at its next change. ok is
// false when no live launch has the id (it ended or never was).
func (m *Manager) Watch(id string) (l api.Launch, changed <-chan struct{}, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ln := m.launches[id]
	if ln == nil {
		return api.Launch{}, nil, false
	}
	return ln.rec, ln.changed, true
}

// Wait blocks until the launch is claimed and returns it. When the launch
// ends first it returns an error matching ErrEnded that wraps the cause of a
// failure (an *ImageError, say); ErrNotFound when no live launch has the id.
func (m *Manager) Wait(ctx context.Context, id string) (api.Launch, error) {
	m.mu.Lock()
	ln := m.launches[id]
	m.mu.Unlock()
	if ln == nil {
		return api.Launch{}, fmt.Errorf("launch %s: %w", id, ErrNotFound)
	}
	for {
		m.mu.Lock()
		rec, changed, ended, cause := ln.rec, ln.changed, ln.ended, ln.cause
		m.mu.Unlock()
		switch {
		case rec.State == api.StateClaimed && !ended:
			return rec, nil
		case rec.State == api.StateEnded && cause != nil:
			return rec, fmt.Errorf("launch %s: %w: %w", id, ErrEnded, cause)
		case rec.State == api.StateEnded:
			return rec, fmt.Errorf("launch %s: %w (%s)", id, ErrEnded, rec.EndReason)
		}
		select {
		case <-ctx.Done():
			return rec, ctx.Err()
		case <-changed:
		}
	}
}

// List returns a binding's live launches (all bindings when binding is "").
func (m *Manager) List(binding string) []api.Launch {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []api.Launch
	for _, ln := range m.launches {
		if binding == "" || ln.rec.Binding == binding {
			out = append(out, ln.rec)
		}
	}
	sortLaunches(out)
	return out
}

func (m *Manager) observeClaim(binding string, cold bool, start time.Time) {
	if o := m.opts.Observer; o != nil {
		o.Claimed(binding, cold, time.Since(start))
	}
}

// NoteActivity records proxy activity on live launches (the proxy keeps the
// exact time; this copy is what status answers and the culler read).
func (m *Manager) NoteActivity(acts map[string]time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, t := range acts {
		if ln := m.launches[id]; ln != nil && t.After(ln.rec.LastActivity) {
			ln.rec.LastActivity = t
		}
	}
}
