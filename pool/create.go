package pool

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/engine"
)

// newLaunchLocked makes a warming launch in p and counts it. Callers hold
// m.mu and have checked canStart.
func (m *Manager) newLaunchLocked(p *pool, reserved bool) *launch {
	id, token := newID(), newToken()
	ln := &launch{
		rec: api.Launch{
			ID: id, Binding: p.binding.Name, State: api.StateWarming, Phase: "waiting",
			Reserved: reserved, Location: basePath(id), URI: launchURI(p.binding.Name, id),
			Token: token, Template: p.template, Created: time.Now().UTC(),
		},
		where:   api.StateWarming,
		pool:    p,
		changed: make(chan struct{}),
	}
	p.warming = append(p.warming, ln)
	m.launches[id] = ln
	return ln
}

// startCreate persists a new warming launch, then creates its container in
// the background. The record is written before the container exists, so a
// crash in between leaves a record that the restart reconcile cleans up,
// never a container nobody knows.
func (m *Manager) startCreate(ctx context.Context, ln *launch) error {
	m.mu.Lock()
	rec := ln.rec
	m.mu.Unlock()
	if err := m.opts.Store.PutLaunch(ctx, rec); err != nil {
		if deleted := m.drop(ln); deleted {
			return fmt.Errorf("launch %s: %w", rec.ID, ErrNoBinding)
		}
		return fmt.Errorf("record launch %s: %w", rec.ID, err)
	}
	cctx, cancel := context.WithCancel(m.ctx)
	m.mu.Lock()
	switch {
	case ln.ended:
		// Ended (binding deleted, pool shrunk) before its creation began;
		// whoever ended it records the end.
		m.mu.Unlock()
		cancel()
		return nil
	case m.closed:
		m.mu.Unlock()
		cancel()
		m.endUnstarted(ctx, ln)
		return fmt.Errorf("launch %s: %w", rec.ID, ErrClosed)
	}
	ln.cancel = cancel
	m.wg.Add(1) // under the lock, with m.closed false: Run's Wait comes after
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		defer cancel()
		m.create(cctx, ln)
	}()
	return nil
}

// drop forgets a launch that never got a record and reports whether its
// binding was deleted meanwhile.
func (m *Manager) drop(ln *launch) (deleted bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unlinkLocked(ln)
	delete(m.launches, ln.rec.ID)
	ln.notify()
	return ln.pool.deleted
}

// endUnstarted ends a recorded launch whose creation never began.
func (m *Manager) endUnstarted(ctx context.Context, ln *launch) {
	m.mu.Lock()
	m.unlinkLocked(ln)
	m.mu.Unlock()
	m.finish(ctx, ln, api.EndFailed, "not started: nbpool is shutting down")
}

// create makes, starts and probes the container of a warming launch, then
// puts it in the pool or, when reserved, claims it.
func (m *Manager) create(ctx context.Context, ln *launch) {
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		m.failCreate(ctx, ln, "", ctx.Err())
		return
	}
	defer func() { <-m.sem }()

	start := time.Now()
	m.mu.Lock()
	b, rec, p := ln.pool.binding, ln.rec, ln.pool
	imageReady := p.imageReady
	m.mu.Unlock()

	if !imageReady {
		m.setPhase(ln, "fetching")
		if err := m.opts.Engine.EnsureImage(ctx, b.Image); err != nil {
			m.failCreate(ctx, ln, "", &ImageError{Image: b.Image, Err: err})
			return
		}
		m.mu.Lock()
		p.imageReady = true
		m.mu.Unlock()
	}

	m.setPhase(ln, "launching")
	spec, err := containerSpec(m.opts.Instance, b, rec)
	if err != nil {
		m.failCreate(ctx, ln, "", err)
		return
	}
	c, err := m.opts.Engine.Run(ctx, spec)
	if err != nil {
		m.failCreate(ctx, ln, "", fmt.Errorf("run container: %w", err))
		return
	}
	m.mu.Lock()
	ln.rec.ContainerID, ln.rec.Address = c.ID, c.Address
	ended := ln.ended
	m.mu.Unlock()
	if ended {
		// Ended while its container was being made: End may not have known
		// the container, so remove it here.
		m.removeContainer(ctx, rec.ID, c.ID)
		return
	}

	m.setPhase(ln, "connecting")
	url := "http://" + c.Address + basePath(rec.ID) + b.Readiness.Path
	if err := m.waitReady(ctx, url, rec.Token, b.Readiness.Timeout.D()); err != nil {
		m.failCreate(ctx, ln, c.ID, err)
		return
	}
	took := time.Since(start)
	m.log.Debug().Str("launch", rec.ID).Str("binding", rec.Binding).Dur("took", took).Msg("container ready")
	if o := m.opts.Observer; o != nil {
		o.Created(rec.Binding, took, nil)
	}
	m.ready(ctx, ln)
}

// ready moves a warming launch whose container answers into the pool, or
// claims it for the visitor waiting for it.
func (m *Manager) ready(ctx context.Context, ln *launch) {
	now := time.Now().UTC()
	m.mu.Lock()
	if ln.ended {
		id, containerID := ln.rec.ID, ln.rec.ContainerID
		m.mu.Unlock()
		m.removeContainer(ctx, id, containerID)
		return
	}
	p := ln.pool
	p.failures, p.lastCause = 0, nil
	ln.rec.Ready = now
	p.warming = remove(p.warming, ln)
	if ln.rec.Reserved {
		ln.where = api.StateClaimed
		p.claimed++
		id, url := ln.rec.ID, ln.claimURL("")
		m.mu.Unlock()
		if rec, err := m.claim(ctx, ln, id, url, true, false); err == nil {
			m.observeClaim(rec.Binding, true, rec.Created)
		}
		return
	}
	ln.where = api.StateAvailable
	ln.rec.State, ln.rec.Phase = api.StateAvailable, "ready"
	p.available = append(p.available, ln)
	rec := ln.rec
	m.mu.Unlock()

	_, err := m.opts.Store.UpdateLaunch(ctx, rec.ID, func(s *api.Launch) error {
		if s.State == api.StateWarming {
			s.State, s.Phase = api.StateAvailable, rec.Phase
		}
		s.Ready, s.ContainerID, s.Address = rec.Ready, rec.ContainerID, rec.Address
		return nil
	})
	if err != nil {
		m.log.Error().Err(err).Str("launch", rec.ID).Str("binding", rec.Binding).Msg("record ready launch")
	}
	m.mu.Lock()
	ln.notify()
	m.mu.Unlock()
	m.Kick()
}

// failCreate ends a warming launch whose container could not be made ready:
// the container (if any) is removed, the failure counted and the binding
// backed off. A creation cancelled because its launch ended (or nbpool is
// stopping) only cleans up.
func (m *Manager) failCreate(ctx context.Context, ln *launch, containerID string, cause error) {
	cancelled := errors.Is(cause, context.Canceled)
	m.mu.Lock()
	already := ln.ended
	p := ln.pool
	if !already {
		m.unlinkLocked(ln)
		ln.cause = cause
		if !cancelled {
			p.fail(cause, m.opts.Backoff)
		}
	}
	rec, failures := ln.rec, p.failures
	m.mu.Unlock()

	m.removeContainer(ctx, rec.ID, containerID)
	switch {
	case already:
		return
	case cancelled:
		m.log.Debug().Str("launch", rec.ID).Str("binding", rec.Binding).Msg("creation interrupted")
		m.record(ctx, ln, api.EndFailed, "creation interrupted by shutdown")
		return
	}
	log := m.log.Warn()
	if failures > 1 {
		log = m.log.Debug() // a warning only on the first failure in a row
	}
	log.Err(cause).Str("launch", rec.ID).Str("binding", rec.Binding).Int("failures", failures).Msg("launch failed")
	if o := m.opts.Observer; o != nil {
		o.Created(rec.Binding, 0, cause)
	}
	m.record(ctx, ln, api.EndFailed, cause.Error())
}

// removeContainer removes a container (none when containerID is empty) and
// reports whether it did. Removal outlives a cancelled caller (a request
// whose client left, a creation cancelled at shutdown) but is bounded.
func (m *Manager) removeContainer(ctx context.Context, launchID, containerID string) bool {
	if containerID == "" {
		return false
	}
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	if err := m.opts.Engine.Remove(ctx, containerID); err != nil {
		m.log.Warn().Err(err).Str("launch", launchID).Str("container", containerID).Msg("remove container")
		return false
	}
	return true
}

// cleanupContext detaches ctx from its cancellation and bounds it: the end
// of a launch must complete even when whoever asked for it has gone.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

// backoff is how long a binding waits after n failures in a row: first
// doubling to 5 minutes; an image that cannot be had waits at least 30s.
func backoff(n int, first time.Duration, image bool) time.Duration {
	d := first
	if image {
		d = max(d, 30*time.Second)
	}
	for i := 1; i < n && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// setPhase records a starting launch's progress for watchers.
func (m *Manager) setPhase(ln *launch, phase string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ln.ended || ln.rec.Phase == phase {
		return
	}
	ln.rec.Phase = phase
	ln.notify()
}

// containerSpec fills a binding's template for one launch.
func containerSpec(instance string, b api.Binding, l api.Launch) (engine.Spec, error) {
	mem, err := api.ParseMemory(b.Limits.Memory)
	if err != nil {
		return engine.Spec{}, err
	}
	r := strings.NewReplacer("{base_url}", basePath(l.ID), "{token}", l.Token, "{port}", strconv.Itoa(b.Port))
	cmd := make([]string, len(b.Command))
	for i, a := range b.Command {
		cmd[i] = r.Replace(a)
	}
	env := map[string]string{
		"NBPOOL_LAUNCH": l.ID, "NBPOOL_BINDING": b.Name, "NBPOOL_BASE_URL": basePath(l.ID),
		"NBPOOL_TOKEN": l.Token, "JUPYTER_TOKEN": l.Token,
	}
	for k, v := range b.Env {
		env[k] = r.Replace(v)
	}
	return engine.Spec{
		Name: containerName(instance, l.ID), Image: b.Image, Cmd: cmd, Env: env,
		Binding: b.Name, Launch: l.ID,
		Memory: mem, NanoCPUs: int64(b.Limits.CPUs * 1e9), PidsLimit: b.Limits.Pids,
		CapAdd: b.CapAdd, Port: b.Port,
	}, nil
}

// containerName is the container of a launch; one name per launch id makes a
// duplicate container for one launch impossible.
func containerName(instance, id string) string { return "nbpool-" + instance + "-" + id }

// fill starts the containers the pools lack and trims the ones they have too
// many of.
func (m *Manager) fill(ctx context.Context) {
	var starts, trims []*launch
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	for _, name := range slices.Sorted(maps.Keys(m.pools)) {
		p := m.pools[name]
		if p.deleted {
			continue
		}
		spare := len(p.available)
		for _, ln := range p.warming {
			if !ln.rec.Reserved {
				spare++
			}
		}
		for ; spare < p.size.Min; spare++ {
			if m.canStart(p) != nil {
				break
			}
			starts = append(starts, m.newLaunchLocked(p, false))
		}
		for len(p.available) > p.size.Min {
			ln := p.available[len(p.available)-1] // the newest goes first
			m.unlinkLocked(ln)
			trims = append(trims, ln)
		}
	}
	m.mu.Unlock()
	for _, ln := range starts {
		if err := m.startCreate(ctx, ln); err != nil {
			m.log.Error().Err(err).Str("binding", ln.rec.Binding).Msg("start container")
		}
	}
	for _, ln := range trims {
		m.finish(ctx, ln, api.EndShrunk, "")
	}
}

// ImageError means a binding's image is not on the host and cannot be pulled.
type ImageError struct {
	Image string
	Err   error
}

func (e *ImageError) Error() string { return fmt.Sprintf("image %s: %v", e.Image, e.Err) }
func (e *ImageError) Unwrap() error { return e.Err }

func isImageError(err error) bool {
	var ie *ImageError
	return errors.As(err, &ie)
}
