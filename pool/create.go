package pool

import (
	"context"
	"errors"
	"fmt"
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
			Token: token, Created: time.Now().UTC(),
		},
		pool:    p,
		gen:     p.gen,
		changed: make(chan struct{}),
	}
	p.warming = append(p.warming, ln)
	m.launches[id] = ln
	m.total++
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
		m.drop(ln)
		return fmt.Errorf("record launch %s: %w", rec.ID, err)
	}
	cctx, cancel := context.WithCancel(m.ctx)
	m.mu.Lock()
	if ln.ended {
		// Ended (binding deleted, pool shrunk) before its creation began.
		m.mu.Unlock()
		cancel()
		return nil
	}
	ln.cancel = cancel
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		defer cancel()
		m.create(cctx, ln)
	}()
	return nil
}

// drop forgets a launch that never got a record.
func (m *Manager) drop(ln *launch) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unlinkLocked(ln)
	delete(m.launches, ln.rec.ID)
	ln.notify()
}

// create makes, starts and probes the container of a warming launch, then
// puts it in the pool or, when reserved, claims it.
func (m *Manager) create(ctx context.Context, ln *launch) {
	m.setPhase(ln, "waiting", "")
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
	log := m.log.With().Str("launch", rec.ID).Str("binding", rec.Binding).Logger()

	if !imageReady {
		m.setPhase(ln, "fetching", "checking image "+b.Image)
		if err := m.opts.Engine.EnsureImage(ctx, b.Image); err != nil {
			m.failCreate(ctx, ln, "", &ImageError{Image: b.Image, Err: err})
			return
		}
		m.mu.Lock()
		p.imageReady = true
		m.mu.Unlock()
	}

	m.setPhase(ln, "launching", "starting container")
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
		m.removeQuietly(ctx, rec.ID, c.ID)
		return
	}

	m.setPhase(ln, "connecting", "waiting for the notebook server")
	url := "http://" + c.Address + basePath(rec.ID) + b.Readiness.Path
	if err := m.waitReady(ctx, url, rec.Token, b.Readiness.Timeout.D()); err != nil {
		m.failCreate(ctx, ln, c.ID, err)
		return
	}
	took := time.Since(start)
	log.Debug().Dur("took", took).Msg("container ready")
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
		m.removeQuietly(ctx, id, containerID)
		return
	}
	p := ln.pool
	p.warming = remove(p.warming, ln)
	p.failures, p.lastErr, p.lastCause = 0, "", nil
	ln.rec.Ready = now
	if ln.rec.Reserved {
		p.claimed++
		ln.rec.State = api.StateClaimed
		m.mu.Unlock()
		if _, err := m.persistClaim(ctx, ln, "", now); err != nil {
			m.log.Error().Err(err).Str("launch", ln.rec.ID).Msg("claim after cold start")
			m.End(ctx, ln.rec.ID, api.EndFailed)
			return
		}
		m.observeClaim(ln.rec.Binding, true, ln.rec.Created)
		return
	}
	if ln.gen != p.gen || p.deleted {
		// Made from a definition that changed meanwhile: not for the pool.
		m.unlinkLocked(ln)
		m.mu.Unlock()
		m.finish(ctx, ln, api.EndUpdated)
		return
	}
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
// backed off.
func (m *Manager) failCreate(ctx context.Context, ln *launch, containerID string, cause error) {
	m.mu.Lock()
	already := ln.ended
	p := ln.pool
	if !already {
		m.unlinkLocked(ln)
		ln.cause = cause
		if !errors.Is(cause, context.Canceled) {
			p.failures++
			p.lastErr, p.lastCause = cause.Error(), cause
			p.backoffUntil = time.Now().Add(backoff(p.failures, isImageError(cause)))
			if isImageError(cause) {
				p.imageReady = false
			}
		}
	}
	rec := ln.rec
	failures := p.failures
	m.mu.Unlock()

	// Cleanup outlives the cancelled creation context but is bounded.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if containerID != "" {
		if err := m.opts.Engine.Remove(cctx, containerID); err != nil {
			m.log.Warn().Err(err).Str("launch", rec.ID).Msg("remove failed container")
		}
	}
	if already {
		return
	}
	if errors.Is(cause, context.Canceled) {
		// Shutdown cancelled the creation: not a failure of the binding.
		m.log.Debug().Str("launch", rec.ID).Str("binding", rec.Binding).Msg("creation interrupted")
		m.record(cctx, ln, api.EndFailed, "creation interrupted by shutdown")
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
	m.record(cctx, ln, api.EndFailed, cause.Error())
}

// removeQuietly removes the container of an ended launch, outliving a
// cancelled creation context.
func (m *Manager) removeQuietly(ctx context.Context, launchID, containerID string) {
	if containerID == "" {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := m.opts.Engine.Remove(cctx, containerID); err != nil {
		m.log.Warn().Err(err).Str("launch", launchID).Msg("remove container of an ended launch")
	}
}

// backoff is how long a binding waits after n failures in a row: 1s doubling
// to 5 minutes; an image that cannot be had starts at 30s.
func backoff(n int, image bool) time.Duration {
	d := time.Second
	if image {
		d = 30 * time.Second
	}
	for i := 1; i < n && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// setPhase records a starting launch's progress for watchers.
func (m *Manager) setPhase(ln *launch, phase, msg string) {
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
	for _, name := range sortedKeys(m.pools) {
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
		m.finish(ctx, ln, api.EndShrunk)
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
