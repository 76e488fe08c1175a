package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/nbpool/nbpool/api"
)

// written is the reply status of a handler that wrote its own answer.
const written = -1

// keepalive is how often an idle event stream gets a comment line, so that
// proxies in between do not close it (BinderHub sends one every ~25 s).
const keepalive = 25 * time.Second

// progress of each phase, for JupyterHub-style clients.
var progress = map[string]int{
	"waiting": 10, "fetching": 20, "launching": 40, "connecting": 70, "ready": 100,
}

var messages = map[string]string{
	"waiting":    "Waiting for a free slot to start a container",
	"fetching":   "Checking the image",
	"launching":  "Starting the container",
	"connecting": "Waiting for the notebook server to answer",
	"ready":      "Ready",
	"ended":      "The launch has ended",
	"failed":     "The launch failed",
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
	ev.Message = messages[ev.Phase]
	if l.Error != "" {
		ev.Message += ": " + l.Error
	} else if l.EndReason != "" {
		ev.Message += " (" + l.EndReason + ")"
	}
	ev.Progress = progress[ev.Phase]
	if ev.Ready {
		ev.URL = l.Location
		if c.holds(l) {
			ev.URL, ev.Token = l.URL, l.Token
		}
	}
	return ev
}
