package web

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/nbpool/nbpool/api"
)

// health checks the store, the engine and the pools; degraded answers 503
// (BinderHub's /health does the same).
func (s *Server) health(c *call) (reply, error) {
	ctx, cancel := context.WithTimeout(c.r.Context(), 3*time.Second)
	defer cancel()
	h := api.Health{Status: "ok", Checks: map[string]api.Check{}}
	check := func(name string, err error) {
		ck := api.Check{OK: err == nil}
		if err != nil {
			ck.Message = err.Error()
			h.Status = "degraded"
		}
		h.Checks[name] = ck
	}
	_, err := s.opts.Store.ListBindings(ctx)
	check("store", err)
	check("engine", s.opts.Engine.Ping(ctx))
	pools := api.Check{OK: true}
	var failing []string
	for _, p := range s.opts.Pools.Pools() {
		if p.Failures > 0 {
			failing = append(failing, p.Binding+": "+p.LastError)
		}
	}
	if len(failing) > 0 {
		pools = api.Check{OK: false, Message: strings.Join(failing, "; ")}
	}
	h.Checks["pools"] = pools // failing pools are reported, not fatal
	if h.Status != "ok" {
		return reply{status: http.StatusServiceUnavailable, body: h}, nil
	}
	return reply{body: h}, nil
}

func (s *Server) version(c *call) (reply, error) { return reply{body: s.opts.Version}, nil }

func (s *Server) openAPI(c *call) (reply, error) {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(s.openapi)
	return reply{status: written}, nil
}

func (s *Server) apiDocs(c *call) (reply, error) {
	c.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(s.docs)
	return reply{status: written}, nil
}
