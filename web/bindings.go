package web

import (
	"errors"
	"net/http"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/pool"
	"github.com/nbpool/nbpool/store"
)

func (s *Server) listBindings(c *call) (reply, error) {
	bs, err := s.opts.Store.ListBindings(c.r.Context())
	if err != nil {
		return reply{}, err
	}
	if bs == nil {
		bs = []api.Binding{}
	}
	return reply{body: api.BindingList{Items: bs}}, nil
}

func (s *Server) getBinding(c *call) (reply, error) {
	name := c.vars["name"]
	b, err := s.opts.Store.GetBinding(c.r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return reply{}, api.ErrBindingNotFound.New("name", name).Wrap(err)
	}
	if err != nil {
		return reply{}, err
	}
	return reply{body: b}, nil
}

// readBinding decodes, normalizes and validates a binding body.
func (s *Server) readBinding(c *call) (api.Binding, error) {
	var b api.Binding
	if err := decode(c, &b, false); err != nil {
		return b, err
	}
	if name := c.vars["name"]; name != "" {
		if b.Name == "" {
			b.Name = name
		}
		if b.Name != name {
			return b, api.ErrInvalidBinding.New("reason", "the name in the body ("+b.Name+") differs from the one in the path ("+name+")")
		}
	}
	b.Normalize()
	if err := b.Validate(); err != nil {
		return b, err
	}
	if b.Pool.Min > s.opts.Pools.Capacity() {
		return b, api.ErrInvalidPool.New("reason", "pool.min is more than the daemon's capacity")
	}
	return b, nil
}

func (s *Server) createBinding(c *call) (reply, error) {
	b, err := s.readBinding(c)
	if err != nil {
		return reply{}, err
	}
	b, err = s.opts.Store.CreateBinding(c.r.Context(), b)
	if errors.Is(err, store.ErrExists) {
		return reply{}, api.ErrBindingExists.New("name", b.Name).Wrap(err)
	}
	if err != nil {
		return reply{}, err
	}
	s.opts.Pools.SetBinding(c.r.Context(), b, b.Pool)
	c.w.Header().Set("Location", "/api/bindings/"+b.Name)
	return reply{body: b}, nil
}

// putBinding creates or replaces a binding; its pool spec replaces any size
// set at runtime.
func (s *Server) putBinding(c *call) (reply, error) {
	b, err := s.readBinding(c)
	if err != nil {
		return reply{}, err
	}
	ctx := c.r.Context()
	b, created, err := s.opts.Store.PutBinding(ctx, b)
	if err != nil {
		return reply{}, err
	}
	if err := s.opts.Store.DeletePoolSize(ctx, b.Name); err != nil {
		return reply{}, err
	}
	s.opts.Pools.SetBinding(ctx, b, b.Pool)
	if created {
		return reply{status: http.StatusCreated, body: b}, nil
	}
	return reply{body: b}, nil
}

// deleteBinding ends the binding's launches, then forgets it. Claimed
// launches make it refuse unless ?force=true.
func (s *Server) deleteBinding(c *call) (reply, error) {
	name := c.vars["name"]
	ctx := c.r.Context()
	if _, err := s.opts.Store.GetBinding(ctx, name); errors.Is(err, store.ErrNotFound) {
		return reply{}, api.ErrBindingNotFound.New("name", name).Wrap(err)
	} else if err != nil {
		return reply{}, err
	}
	force := c.r.URL.Query().Get("force") == "true"
	err := s.opts.Pools.RemoveBinding(ctx, name, force)
	var inUse *pool.InUseError
	switch {
	case errors.As(err, &inUse):
		return reply{}, api.ErrBindingInUse.New("name", name, "count", inUse.Claimed).Wrap(err)
	case err != nil && !errors.Is(err, pool.ErrNoBinding):
		return reply{}, err
	}
	if err := s.opts.Store.DeleteBinding(ctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return reply{}, err
	}
	return reply{}, nil
}
