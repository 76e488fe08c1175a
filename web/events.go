package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/nbpool/nbpool/api"
)

// keepalive is how often an idle event stream gets a comment line, so that
// proxies in between do not close it (BinderHub sends one every ~25 s).
const keepalive = 25 * time.Second

// phaseText gives the progress (for JupyterHub-style clients) and the
// message of a phase.
func phaseText(phase string) (progress int, message string) {
	switch phase {
	case "waiting":
		return 10, "Waiting for a free slot to start a container"
	case "fetching":
		return 20, "Checking the image"
	case "launching":
		return 40, "Starting the container"
	case "connecting":
		return 70, "Waiting for the notebook server to answer"
	case "ready":
		return 100, "Ready"
	case "ended":
		return 0, "The launch has ended"
	case "failed":
		return 0, "The launch failed"
	}
	return 0, phase
}

// launchEvents streams a launch's progress as text/event-stream until it is
// claimed (ready) or ends (failed).
func (s *Server) launchEvents(c *call) (reply, error) {
	ctx := c.r.Context()
	binding, id := c.vars["binding"], c.vars["id"]
	if _, err := s.findLaunch(ctx, binding, id); err != nil {
		return reply{}, err
	}
	w := c.w
	flusher, _ := w.(http.Flusher)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(ev api.Event) {
		b, _ := json.Marshal(ev)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	tick := time.NewTicker(keepalive)
	defer tick.Stop()
	last := ""
	for {
		l, changed, live := s.opts.Pools.Watch(id)
		if !live {
			l, _ = s.findLaunch(ctx, binding, id)
		}
		ev := s.event(c, l)
		if ev.Phase != last {
			send(ev)
			last = ev.Phase
		}
		if ev.Ready || ev.Failed {
			return reply{status: written}, nil
		}
		select {
		case <-ctx.Done():
			return reply{status: written}, nil
		case <-changed:
		case <-tick.C:
			fmt.Fprint(w, ": keepalive\n\n")
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}

// event describes a launch's state as one progress event.
func (s *Server) event(c *call, l api.Launch) api.Event {
	ev := api.Event{Phase: l.Phase, ID: l.ID}
	switch l.State {
	case api.StateClaimed:
		ev.Phase, ev.Ready = "ready", true
	case api.StateEnded:
		ev.Failed = true
		if l.EndReason != api.EndFailed {
			ev.Phase = "ended"
		} else {
			ev.Phase = "failed"
		}
	case api.StateAvailable:
		ev.Phase = "available"
	}
	ev.Progress, ev.Message = phaseText(ev.Phase)
	if l.Error != "" {
		ev.Message += ": " + l.Error
	} else if l.EndReason != "" {
		ev.Message += " (" + l.EndReason + ")"
	}
	if ev.Ready {
		ev.URL = l.Location
		if c.holds(l) {
			ev.URL, ev.Token = l.URL, l.Token
		}
	}
	return ev
}
