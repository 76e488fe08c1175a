package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxEventLine bounds one line of an event stream.
const maxEventLine = 1 << 20

// Events follows a starting launch (binders.events): it reads the
// text/event-stream and calls fn with each event, in order. It returns nil
// after the event with Ready or Failed (the stream's last; the server may
// keep the connection open after it) or when the stream ends; fn's error
// as is when fn fails; the context's error, wrapped, when ctx ends. An
// error answer (no such launch) is an *Error as from Do.
//
// The context bounds the whole stream; so does the Client's http.Client
// Timeout when set.
func (c *Client) Events(ctx context.Context, binding, id string, fn func(Event) error) error {
	e, resp, err := c.send(ctx, "binders.events", kv("binding", binding, "id", id), nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c.errorFrom(e, kv("binding", binding, "id", id), resp)
	}
	var fnErr error
	err = readEvents(resp.Body, func(data string) (bool, error) {
		var ev Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return false, c.badResponse(resp.StatusCode, "an event is not JSON: "+snippet([]byte(data)))
		}
		if fnErr = fn(ev); fnErr != nil {
			return false, fnErr
		}
		return !ev.Ready && !ev.Failed, nil
	})
	if err != nil && fnErr == nil && ctx.Err() != nil {
		return fmt.Errorf("events of launch %s: %w", id, ctx.Err())
	}
	return err
}

// readEvents parses a text/event-stream (the WHATWG server-sent events
// format) from r and calls dispatch with each event's data: its data lines
// joined by newlines. Comments (":" lines, keepalives) and the event, id
// and retry fields are skipped. It stops when dispatch returns false or an
// error, or at the end of r, where a last event not followed by a blank
// line is still dispatched.
func readEvents(r io.Reader, dispatch func(data string) (bool, error)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEventLine)
	var data []string
	flush := func() (bool, error) {
		if len(data) == 0 {
			return true, nil
		}
		d := strings.Join(data, "\n")
		data = data[:0]
		return dispatch(d)
	}
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if more, err := flush(); err != nil || !more {
				return err
			}
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		if field == "data" {
			data = append(data, strings.TrimPrefix(value, " "))
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read the event stream: %w", err)
	}
	_, err := flush()
	return err
}
