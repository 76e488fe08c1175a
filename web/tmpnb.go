package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/pool"
)

// tmpnbSpawn is tmpnb's POST /api/spawn/: 200 {"url": …} once the notebook
// answers, waiting for a cold start when the pool is empty; 429
// {"status": "full"} at capacity. Old clients send {"image_name": …}, which
// is ignored, or anything else: the body is read leniently.
func (s *Server) tmpnbSpawn(c *call) (reply, error) {
	var req api.TmpnbSpawnRequest
	data, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, maxBody))
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return reply{}, api.ErrTooLarge.New("limit", "1 MiB")
	}
	_ = json.Unmarshal(data, &req) // tmpnb ignored the body; so do we, but for binding
	binding := req.Binding
	if binding == "" {
		binding = s.opts.DefaultBinding
	}
	ctx := c.r.Context()
	l, cold, err := s.opts.Pools.Claim(ctx, binding, "")
	if err != nil {
		return reply{}, claimError(binding, err)
	}
	if cold {
		if l, err = s.waitCold(ctx, binding, l.ID); err != nil {
			return reply{}, err
		}
	}
	return reply{body: api.TmpnbSpawn{URL: l.URL}}, nil
}

// waitCold waits for a cold start to be claimed, within the binding's
// readiness timeout and SpawnWait.
func (s *Server) waitCold(ctx context.Context, binding, id string) (api.Launch, error) {
	b, _ := s.opts.Pools.Binding(binding)
	ctx, cancel := context.WithTimeout(ctx, b.Readiness.Timeout.D()+s.opts.SpawnWait)
	defer cancel()
	l, err := s.opts.Pools.Wait(ctx, id)
	if err == nil {
		return l, nil
	}
	if ctx.Err() != nil {
		// The visitor went away or waited too long: do not leave a
		// container claimed for nobody.
		_, _ = s.opts.Pools.End(context.WithoutCancel(ctx), id, api.EndFailed)
		return l, api.ErrSpawnFailed.New("binding", binding, "reason", fmt.Sprintf("not ready in time (%v)", ctx.Err())).Wrap(err)
	}
	var ie *pool.ImageError
	if errors.As(err, &ie) {
		return l, err
	}
	reason := l.Error
	if reason == "" {
		reason = "it ended (" + l.EndReason + ")"
	}
	return l, api.ErrSpawnFailed.New("binding", binding, "reason", reason).Wrap(err)
}

// tmpnbStats is tmpnb's GET /api/stats: the default binding's available
// containers and the capacity.
func (s *Server) tmpnbStats(c *call) (reply, error) {
	st := api.Stats{Capacity: s.opts.Pools.Capacity(), Version: s.opts.Version.Version}
	if p, err := s.opts.Pools.Pool(s.opts.DefaultBinding); err == nil {
		st.Available = p.Available
	}
	if b, ok := s.opts.Pools.Binding(s.opts.DefaultBinding); ok {
		st.ContainerImage = b.Image
	}
	return reply{body: st}, nil
}
