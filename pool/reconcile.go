package pool

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/engine"
	"github.com/nbpool/nbpool/proxy"
)

// ReconcileReport says what a reconcile did.
type ReconcileReport struct {
	Claimed   int // claimed launches adopted, routes back
	Available int // available launches probed and put back in their pool
	Ended     int // live records ended: container gone, dead, unready or interrupted
	Removed   int // containers removed: strangers, interrupted creations, dead
}

// Reconcile matches the live launch records of the store with the managed
// containers of this instance, at start before Run: claimed launches get
// their routes back with the same id and token, available ones are probed
// and return to their pool, launches whose container vanished end as lost,
// creations interrupted by a crash are removed and end as failed, and
// containers no record knows are removed. The bindings must be set first.
func (m *Manager) Reconcile(ctx context.Context, records []api.Launch, containers []engine.Container) (ReconcileReport, error) {
	var t tally
	// Removals and record ends run in the background, 8 at a time, while the
	// live launches are adopted and probed: a forced removal takes the
	// engine a few hundred milliseconds, and a restart after a crash has one
	// to do for every interrupted creation.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	cleanup := func(containerID string, rec *api.Launch, reason, msg string) {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			removed := m.removeContainer(ctx, launchOf(rec), containerID)
			if rec != nil {
				m.endRecord(ctx, *rec, reason, msg)
			}
			t.add(func(r *ReconcileReport) {
				if removed {
					r.Removed++
				}
				if rec != nil {
					r.Ended++
				}
			})
		})
	}

	byLaunch := make(map[string]engine.Container, len(containers))
	for _, c := range containers {
		if prev, dup := byLaunch[c.Launch]; dup || c.Launch == "" {
			// A second container for one launch cannot be made (one name per
			// launch), but a hand-made one could carry the label: drop it.
			if dup {
				cleanup(prev.ID, nil, "", "")
			}
			if c.Launch == "" {
				cleanup(c.ID, nil, "", "")
				continue
			}
		}
		byLaunch[c.Launch] = c
	}

	var probes []*launch
	for _, rec := range records {
		c, found := byLaunch[rec.ID]
		delete(byLaunch, rec.ID)
		m.mu.Lock()
		p := m.pools[rec.Binding]
		m.mu.Unlock()
		switch {
		case rec.State == api.StateWarming:
			// Created, started or not yet asked for: an interrupted creation.
			// (A container that the engine creates only after the list is
			// removed by the daemon's event loop.)
			id := ""
			if found {
				id = c.ID
			}
			cleanup(id, &rec, api.EndFailed, "creation interrupted by a restart")
		case !found:
			cleanup("", &rec, api.EndLost, "container vanished while nbpool was down")
		case p == nil:
			cleanup(c.ID, &rec, api.EndDeleted, "binding no longer exists")
		case !c.Running:
			cleanup(c.ID, &rec, api.EndDied, fmt.Sprintf("container exited (code %d) while nbpool was down", c.ExitCode))
		case rec.State == api.StateClaimed:
			rec.ContainerID, rec.Address = c.ID, c.Address
			m.adopt(p, rec)
			t.add(func(r *ReconcileReport) { r.Claimed++ })
		case rec.State == api.StateAvailable && rec.Template != p.template:
			cleanup(c.ID, &rec, api.EndUpdated, "made from an older definition of the binding")
		case rec.State == api.StateAvailable:
			rec.ContainerID, rec.Address = c.ID, c.Address
			probes = append(probes, m.adoptWarming(p, rec))
		}
	}
	for _, c := range byLaunch {
		cleanup(c.ID, nil, "", "")
	}
	m.reprobe(ctx, probes, &t)
	wg.Wait()
	m.Kick()
	return t.rep, nil
}

// tally is a ReconcileReport counted from parallel goroutines.
type tally struct {
	mu  sync.Mutex
	rep ReconcileReport
}

func (t *tally) add(fn func(*ReconcileReport)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fn(&t.rep)
}

// adopt puts a claimed launch back with its route.
func (m *Manager) adopt(p *pool, rec api.Launch) {
	ln := &launch{rec: rec, where: api.StateClaimed, pool: p, changed: make(chan struct{})}
	m.mu.Lock()
	m.launches[rec.ID] = ln
	p.claimed++
	m.opts.Router.Add(proxy.Route{ID: rec.ID, Binding: rec.Binding, Target: rec.Address, Token: rec.Token})
	m.mu.Unlock()
	if !rec.LastActivity.IsZero() {
		m.opts.Router.Touch(rec.ID, rec.LastActivity)
	}
}

// adoptWarming counts an available launch as warming until its probe passes.
func (m *Manager) adoptWarming(p *pool, rec api.Launch) *launch {
	rec.State = api.StateWarming
	ln := &launch{rec: rec, where: api.StateWarming, pool: p, changed: make(chan struct{})}
	m.mu.Lock()
	m.launches[rec.ID] = ln
	p.warming = append(p.warming, ln)
	m.mu.Unlock()
	return ln
}

// reprobe checks adopted available launches in parallel; ready ones return
// to their pool, the others are removed and ended.
func (m *Manager) reprobe(ctx context.Context, probes []*launch, t *tally) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, ln := range probes {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			rec, b := ln.rec, ln.pool.binding
			url := "http://" + rec.Address + basePath(rec.ID) + b.Readiness.Path
			if err := m.waitReady(ctx, url, rec.Token, 5*time.Second); err != nil {
				m.failCreate(ctx, ln, rec.ContainerID, fmt.Errorf("re-probe after restart: %w", err))
				t.add(func(r *ReconcileReport) { r.Ended++; r.Removed++ })
				return
			}
			m.mu.Lock()
			if !ln.ended {
				p := ln.pool
				p.warming = remove(p.warming, ln)
				ln.where, ln.rec.State = api.StateAvailable, api.StateAvailable
				p.available = append(p.available, ln)
			}
			m.mu.Unlock()
			t.add(func(r *ReconcileReport) { r.Available++ })
		})
	}
	wg.Wait()
}

// endRecord ends a stored launch that has no launch in memory.
func (m *Manager) endRecord(ctx context.Context, rec api.Launch, reason, msg string) {
	ln := &launch{rec: rec, changed: make(chan struct{})}
	m.record(ctx, ln, reason, msg)
	m.log.Info().Str("launch", rec.ID).Str("binding", rec.Binding).Str("reason", reason).Msg(msg)
}

// Resync matches the live launches in memory with the engine's containers,
// listed at listed, when the engine comes back after an outage: launches
// whose container is gone end as lost, dead ones as died, and containers of
// this instance that no live launch knows are removed. Launches still
// warming, or ready only since the list, are left alone: their containers
// may postdate the list.
func (m *Manager) Resync(ctx context.Context, containers []engine.Container, listed time.Time) ReconcileReport {
	var rep ReconcileReport
	byLaunch := map[string]engine.Container{}
	for _, c := range containers {
		byLaunch[c.Launch] = c
	}
	m.mu.Lock()
	type check struct {
		id, reason string
	}
	var ends []check
	known := map[string]bool{}
	for id, ln := range m.launches {
		known[id] = true
		if ln.rec.State == api.StateWarming || !ln.rec.Ready.Before(listed) {
			continue // its creation will succeed or fail by itself
		}
		c, ok := byLaunch[id]
		switch {
		case !ok:
			ends = append(ends, check{id, api.EndLost})
		case !c.Running:
			ends = append(ends, check{id, api.EndDied})
		}
	}
	m.mu.Unlock()
	for _, e := range ends {
		if _, err := m.End(ctx, e.id, e.reason); err == nil {
			rep.Ended++
		}
	}
	for launch, c := range byLaunch {
		if !known[launch] && m.removeContainer(ctx, launch, c.ID) {
			rep.Removed++
		}
	}
	m.Kick()
	return rep
}

func launchOf(rec *api.Launch) string {
	if rec == nil {
		return ""
	}
	return rec.ID
}
