package pool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nbpool/nbpool/api"
)

// InUseError is returned by RemoveBinding when the binding still has claimed
// launches and force is not set. It matches ErrInUse.
type InUseError struct {
	Binding string
	Claimed int
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("binding %s has %d claimed launches", e.Binding, e.Claimed)
}

// Is makes errors.Is(err, ErrInUse) hold.
func (e *InUseError) Is(target error) bool { return target == ErrInUse }

// End ends a live launch for reason: its route goes, its record moves to
// history and its container is removed; the pool refills. It returns the
// ended record, or ErrNotFound when no live launch has the id. The end
// completes even if ctx is cancelled meanwhile.
func (m *Manager) End(ctx context.Context, id, reason string) (api.Launch, error) {
	l, ok := m.EndIf(ctx, id, reason, nil)
	if !ok {
		return api.Launch{}, fmt.Errorf("end launch %s: %w", id, ErrNotFound)
	}
	return l, nil
}

// EndIf ends the launch only if keep (when not nil) reports false for its
// current record, deciding under the manager's lock (the culler uses it so a
// launch that became active is not culled).
func (m *Manager) EndIf(ctx context.Context, id, reason string, keep func(api.Launch) bool) (api.Launch, bool) {
	m.mu.Lock()
	ln := m.launches[id]
	if ln == nil || ln.ended || (keep != nil && keep(ln.rec)) {
		m.mu.Unlock()
		return api.Launch{}, false
	}
	m.unlinkLocked(ln)
	m.mu.Unlock()
	return m.finish(ctx, ln, reason, ""), true
}

// ContainerDied ends the launch of a container that exited (reason died or
// oom). A container that exits before it was ever ready is a failure of its
// binding: it is counted and the binding backs off, so an image whose
// server cannot start does not restart in a loop. It reports whether a live
// launch ended.
func (m *Manager) ContainerDied(ctx context.Context, id, reason string, exitCode int) bool {
	m.mu.Lock()
	ln := m.launches[id]
	if ln == nil || ln.ended {
		m.mu.Unlock()
		return false
	}
	msg := ""
	if ln.where == api.StateWarming {
		cause := fmt.Errorf("container exited (code %d) before its notebook server was ready", exitCode)
		if reason == api.EndOOM {
			cause = fmt.Errorf("container was killed for lack of memory before its notebook server was ready")
		}
		ln.pool.fail(cause, m.opts.Backoff)
		ln.cause = cause
		reason, msg = api.EndFailed, cause.Error()
	}
	m.unlinkLocked(ln)
	m.mu.Unlock()
	m.finish(ctx, ln, reason, msg)
	return true
}

// RemoveBinding ends every launch of a binding and forgets its pool. With
// claimed launches it fails with *InUseError unless force is set.
func (m *Manager) RemoveBinding(ctx context.Context, name string, force bool) error {
	m.mu.Lock()
	p := m.pools[name]
	if p == nil || p.deleted {
		m.mu.Unlock()
		return fmt.Errorf("remove binding %s: %w", name, ErrNoBinding)
	}
	if p.claimed > 0 && !force {
		m.mu.Unlock()
		return &InUseError{Binding: name, Claimed: p.claimed}
	}
	p.deleted = true
	delete(m.pools, name)
	var ends []*launch
	for _, ln := range m.launches {
		if ln.pool == p {
			ends = append(ends, ln)
		}
	}
	for _, ln := range ends {
		m.unlinkLocked(ln)
	}
	m.mu.Unlock()
	for _, ln := range ends {
		m.finish(ctx, ln, api.EndDeleted, "")
	}
	return nil
}

// unlinkLocked marks a launch ended, takes it out of its pool and uncounts
// it; it stays in the launch table (so readers see it) until its end is
// recorded. Callers hold m.mu; a second call does nothing.
func (m *Manager) unlinkLocked(ln *launch) {
	if ln.ended {
		return
	}
	ln.ended = true
	p := ln.pool
	switch ln.where {
	case api.StateWarming:
		p.warming = remove(p.warming, ln)
	case api.StateAvailable:
		p.available = remove(p.available, ln)
	case api.StateClaimed:
		p.claimed--
	}
}

// finish completes the end of a launch already unlinked and marked ended:
// the route goes, a creation in flight is cancelled, the container is removed
// and the record moves to history. It outlives a cancelled ctx.
func (m *Manager) finish(ctx context.Context, ln *launch, reason, errMsg string) api.Launch {
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	m.mu.Lock()
	stop := ln.cancel
	id, containerID := ln.rec.ID, ln.rec.ContainerID
	m.mu.Unlock()
	m.opts.Router.Remove(id)
	if stop != nil {
		stop()
	}
	m.removeContainer(ctx, id, containerID)
	rec := m.record(ctx, ln, reason, errMsg)
	m.log.Info().Str("launch", rec.ID).Str("binding", rec.Binding).Str("reason", reason).Msg("launch ended")
	m.Kick()
	return rec
}

// record writes the end of a launch to the store, then updates the launch
// in memory, takes it out of the launch table and wakes its watchers: a
// reader never sees the launch gone from memory before its end is stored.
func (m *Manager) record(ctx context.Context, ln *launch, reason, errMsg string) api.Launch {
	m.mu.Lock()
	rec := ln.rec
	m.mu.Unlock()
	rec.State, rec.EndReason, rec.Ended, rec.Error = api.StateEnded, reason, time.Now().UTC(), errMsg
	rec.Phase = "ended"
	if reason == api.EndFailed {
		rec.Phase = "failed"
	}

	_, err := m.opts.Store.UpdateLaunch(ctx, rec.ID, func(s *api.Launch) error {
		s.State, s.EndReason, s.Ended, s.Error, s.Phase = rec.State, rec.EndReason, rec.Ended, rec.Error, rec.Phase
		if s.LastActivity.Before(rec.LastActivity) {
			s.LastActivity = rec.LastActivity
		}
		s.ContainerID, s.Address = rec.ContainerID, rec.Address
		return nil
	})
	if err != nil {
		// No live record (it was never written, or already moved): keep the
		// history anyway.
		if perr := m.opts.Store.PutLaunch(ctx, rec); perr != nil {
			m.log.Error().Err(errors.Join(err, perr)).Str("launch", rec.ID).Msg("record end of launch")
		}
	}

	m.mu.Lock()
	ln.rec = rec
	if m.launches[rec.ID] == ln {
		delete(m.launches, rec.ID)
	}
	ln.notify()
	m.mu.Unlock()
	if o := m.opts.Observer; o != nil {
		o.Ended(rec.Binding, reason)
	}
	return rec
}

func remove(ls []*launch, ln *launch) []*launch {
	for i, x := range ls {
		if x == ln {
			copy(ls[i:], ls[i+1:])
			ls[len(ls)-1] = nil
			return ls[:len(ls)-1]
		}
	}
	return ls
}
