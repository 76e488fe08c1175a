package web

import (
	"errors"
	"fmt"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/pool"
)

func (s *Server) listPools(c *call) (reply, error) {
	return reply{body: api.PoolList{Items: s.opts.Pools.Pools()}}, nil
}

func (s *Server) getPool(c *call) (reply, error) {
	name := c.vars["binding"]
	p, err := s.opts.Pools.Pool(name)
	if errors.Is(err, pool.ErrNoBinding) {
		return reply{}, api.ErrBindingNotFound.New("name", name).Wrap(err)
	}
	if err != nil {
		return reply{}, err
	}
	return reply{body: p}, nil
}

// setPool resizes a pool at runtime; the size is stored and outlives a
// restart. Resizes run one at a time, so two partial updates (min alone, max
// alone) both hold.
func (s *Server) setPool(c *call) (reply, error) {
	name := c.vars["binding"]
	var up api.PoolUpdate
	if err := decode(c, &up, false); err != nil {
		return reply{}, err
	}
	s.resizeMu.Lock()
	defer s.resizeMu.Unlock()
	cur, err := s.opts.Pools.Pool(name)
	if errors.Is(err, pool.ErrNoBinding) {
		return reply{}, api.ErrBindingNotFound.New("name", name).Wrap(err)
	}
	if err != nil {
		return reply{}, err
	}
	if up.MinPool == nil && up.MaxPool == nil {
		return reply{}, api.ErrInvalidPool.New("reason", "set minPool, maxPool or both")
	}
	size := api.PoolSpec{Min: cur.MinPool, Max: cur.MaxPool}
	if up.MinPool != nil {
		size.Min = *up.MinPool
	}
	if up.MaxPool != nil {
		size.Max = *up.MaxPool
	}
	if err := api.ValidatePool(size.Min, size.Max); err != nil {
		return reply{}, err
	}
	if capacity := s.opts.Pools.Capacity(); size.Min > capacity {
		return reply{}, api.ErrInvalidPool.New("reason", fmt.Sprintf("minPool %d is more than the capacity %d", size.Min, capacity))
	}
	if err := s.opts.Store.PutPoolSize(c.r.Context(), name, size); err != nil {
		return reply{}, err
	}
	if err := s.opts.Pools.Resize(name, size); err != nil {
		return reply{}, api.ErrBindingNotFound.New("name", name).Wrap(err)
	}
	p, err := s.opts.Pools.Pool(name)
	if err != nil {
		return reply{}, err
	}
	return reply{body: p}, nil
}
