package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/events"
)

// Event is a lifecycle event of one of this instance's containers.
type Event struct {
	// Action is "create", "start", "die", "oom" or "destroy". An OOM kill is
	// reported as "oom" followed by "die". A container whose creator went
	// away between create and start (a crash) reports only "create".
	Action      string
	ContainerID string
	// Binding and Launch come from the container's labels.
	Binding, Launch string
	// ExitCode is set on "die".
	ExitCode int
	Time     time.Time
}

// eventActions are the container actions Events reports.
var eventActions = []events.Action{events.ActionCreate, events.ActionStart, events.ActionDie, events.ActionOOM, events.ActionDestroy}

// Events streams the create, start, die, oom and destroy events of this instance's
// containers (LabelManaged=true and LabelInstance=Instance()). It returns at
// once and subscribes in the background, asking the engine for events since
// the call, so nothing that happens after Events returns is missed.
//
// The stream ends the same way however it breaks:
//
//   - exactly one non-nil error is sent on the error channel (buffered, so it
//     never waits for the caller), then the event channel is closed, then the
//     error channel is closed;
//   - when ctx ends, the error is ctx.Err(), wrapped (errors.Is works);
//   - when the engine cannot be reached or drops the stream (a restart, a
//     broken connection), the error wraps ErrUnavailable;
//   - any other error is the engine's, as is.
//
// So a caller can range over the events and then receive the one error, or
// select on both; a closed event channel always means an error is waiting.
// Events that happen while no stream is open are lost: a caller that
// reconnects calls Events again (with backoff while it gets ErrUnavailable)
// and then List to catch up on what it missed.
func (e *Engine) Events(ctx context.Context) (<-chan Event, <-chan error) {
	args := e.labelFilters()
	args.Add("type", string(events.ContainerEventType))
	for _, a := range eventActions {
		args.Add("event", string(a))
	}
	since := time.Now()
	opts := events.ListOptions{
		Since:   fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Filters: args,
	}

	out := make(chan Event)
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		defer close(out)
		// Subscribing here, not in Events, keeps Events from waiting on an
		// engine that accepts the connection but does not answer.
		msgs, errs := e.system.Events(ctx, opts)
		for {
			select {
			case msg := <-msgs:
				select {
				case out <- toEvent(msg):
				case <-ctx.Done():
					errc <- fmt.Errorf("docker events: %w", ctx.Err())
					return
				}
			case err := <-errs:
				errc <- fmt.Errorf("docker events: %w", streamError(ctx, err))
				return
			}
		}
	}()
	return out, errc
}

// streamError classifies the error that ended an event stream.
func streamError(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: the engine closed the event stream", ErrUnavailable)
	case errors.As(err, new(net.Error)):
		return mark(ErrUnavailable, err)
	default:
		return classify(ctx, err)
	}
}

func toEvent(msg events.Message) Event {
	ev := Event{
		Action:      string(msg.Action),
		ContainerID: msg.Actor.ID,
		Binding:     msg.Actor.Attributes[LabelBinding],
		Launch:      msg.Actor.Attributes[LabelLaunch],
		Time:        time.Unix(msg.Time, 0),
	}
	if msg.TimeNano != 0 {
		ev.Time = time.Unix(0, msg.TimeNano)
	}
	if code, ok := msg.Actor.Attributes["exitCode"]; ok {
		ev.ExitCode, _ = strconv.Atoi(code)
	}
	return ev
}
