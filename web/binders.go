package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/pool"
	"github.com/nbpool/nbpool/store"
)

// spawn launches a notebook: 201 with a warm container, 202 with a starting
// one. Both answers carry the launch token: whoever spawned holds it.
func (s *Server) spawn(c *call) (reply, error) {
	binding := c.vars["binding"]
	var req api.SpawnRequest
	if err := decode(c, &req, true); err != nil {
		return reply{}, err
	}
	l, cold, err := s.opts.Pools.Claim(c.r.Context(), binding, req.Path)
	if err != nil {
		return reply{}, claimError(binding, err)
	}
	c.w.Header().Set("Location", l.URI)
	if cold {
		return reply{status: http.StatusAccepted, body: l}, nil
	}
	return reply{body: l}, nil
}

// claimError names the binding in the errors of a claim.
func claimError(binding string, err error) error {
	switch {
	case errors.Is(err, pool.ErrNoBinding):
		return api.ErrBindingNotFound.New("name", binding).Wrap(err)
	case errors.Is(err, pool.ErrBackoff):
		e := api.ErrSpawnFailed.New("binding", binding, "reason", err).Wrap(err)
		e.RetryAfter = 5
		return e
	}
	return err
}

// findLaunch returns a launch of the binding, live or from history.
func (s *Server) findLaunch(ctx context.Context, binding, id string) (api.Launch, error) {
	l, ok := s.opts.Pools.Get(id)
	if !ok {
		var err error
		l, err = s.opts.Store.GetLaunch(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return l, api.ErrLaunchNotFound.New("id", id, "binding", binding).Wrap(err)
		}
		if err != nil {
			return l, err
		}
	}
	if l.Binding != binding {
		return api.Launch{}, api.ErrLaunchNotFound.New("id", id, "binding", binding)
	}
	return l, nil
}

// holds reports whether the caller may see and stop l: the admin, or whoever
// presents the launch's token.
func (c *call) holds(l api.Launch) bool {
	return c.admin || (c.token != "" && subtle.ConstantTimeCompare([]byte(c.token), []byte(l.Token)) == 1)
}

// redact hides the secrets of a launch from a caller who does not hold it.
func redact(l api.Launch) api.Launch {
	l.Token, l.URL, l.Address, l.ContainerID = "", "", "", ""
	return l
}

func (s *Server) launchStatus(c *call) (reply, error) {
	l, err := s.findLaunch(c.r.Context(), c.vars["binding"], c.vars["id"])
	if err != nil {
		return reply{}, err
	}
	if !c.holds(l) {
		l = redact(l)
	}
	return reply{body: l}, nil
}

func (s *Server) stopLaunch(c *call) (reply, error) {
	ctx := c.r.Context()
	binding, id := c.vars["binding"], c.vars["id"]
	l, err := s.findLaunch(ctx, binding, id)
	if err != nil {
		if !c.admin && api.ErrLaunchNotFound.Is(err) {
			// Do not tell strangers which ids exist.
			return reply{}, s.unauthorized(c.token, "the admin token or the launch's token")
		}
		return reply{}, err
	}
	if !c.holds(l) {
		return reply{}, s.unauthorized(c.token, "the admin token or the launch's token")
	}
	if !l.Live() {
		return reply{body: l}, nil
	}
	ended, err := s.opts.Pools.End(ctx, id, api.EndStopped)
	if errors.Is(err, pool.ErrNotFound) {
		// It ended meanwhile.
		l, err = s.findLaunch(ctx, binding, id)
		return reply{body: l}, err
	}
	if err != nil {
		return reply{}, err
	}
	return reply{body: ended}, nil
}

func (s *Server) listLaunches(c *call) (reply, error) {
	binding := c.vars["binding"]
	ctx := c.r.Context()
	if _, err := s.opts.Store.GetBinding(ctx, binding); errors.Is(err, store.ErrNotFound) {
		if _, live := s.opts.Pools.Binding(binding); !live {
			return reply{}, api.ErrBindingNotFound.New("name", binding).Wrap(err)
		}
	}
	state := c.r.URL.Query().Get("state")
	var items []api.Launch
	switch state {
	case "ended":
		hist, err := s.opts.Store.History(ctx, binding, 1000)
		if err != nil {
			return reply{}, err
		}
		items = hist
	case "", "live", string(api.StateWarming), string(api.StateAvailable), string(api.StateClaimed):
		for _, l := range s.opts.Pools.List(binding) {
			if state == "" || state == "live" || string(l.State) == state {
				items = append(items, l)
			}
		}
	default:
		return reply{}, api.ErrMalformedRequest.New("reason", "state must be warming, available, claimed, live or ended, not "+state)
	}
	if items == nil {
		items = []api.Launch{}
	}
	return reply{body: api.LaunchList{Items: items}}, nil
}
