package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nbpool/nbpool/engine"
)

// next returns the next event within d, failing the test on timeout or when
// the stream ends.
func next(t *testing.T, events <-chan engine.Event, errs <-chan error, d time.Duration) engine.Event {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatalf("event stream ended: %v", <-errs)
		}
		return ev
	case <-time.After(d):
		t.Fatalf("no event within %v", d)
		return engine.Event{}
	}
}

func TestEvents(t *testing.T) {
	t.Parallel()
	mine, other := newEngine(t), newEngine(t)
	events, errs := mine.Events(t.Context())

	stranger := mustRun(t, other, "stranger")
	c := mustRun(t, mine, "watched")
	// A stranger's events, if they leaked through, would come first.
	if err := docker.ContainerKill(t.Context(), stranger.ID, "KILL"); err != nil {
		t.Fatal(err)
	}

	for _, want := range []string{"create", "start"} {
		ev := next(t, events, errs, 5*time.Second)
		if ev.Action != want || ev.ContainerID != c.ID || ev.Launch != "watched" || ev.Binding != "tiny" {
			t.Fatalf("event %+v, want %s of %s", ev, want, c.ID[:12])
		}
	}

	killed := time.Now()
	if err := docker.ContainerKill(t.Context(), c.ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	ev := next(t, events, errs, 2*time.Second)
	if ev.Action != "die" || ev.ContainerID != c.ID || ev.ExitCode != 137 || ev.Launch != "watched" {
		t.Fatalf("after kill: %+v, want die of %s with 137", ev, c.ID[:12])
	}
	t.Logf("die arrived %v after the kill", time.Since(killed).Round(time.Millisecond))
	if ev.Time.Before(killed.Add(-time.Second)) || ev.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("die event time %v, killed at %v", ev.Time, killed)
	}

	if err := mine.Remove(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	ev = next(t, events, errs, 2*time.Second)
	if ev.Action != "destroy" || ev.ContainerID != c.ID || ev.Launch != "watched" {
		t.Fatalf("after Remove: %+v, want destroy of %s", ev, c.ID[:12])
	}
}

func TestEventsOOM(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	events, errs := e.Events(t.Context())
	s := spec(e, "hog")
	s.Memory = 32 << 20
	c, err := e.Run(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"create", "start"} {
		if ev := next(t, events, errs, 5*time.Second); ev.Action != want {
			t.Fatalf("event %+v, want %s", ev, want)
		}
	}
	get(t, "http://"+c.Address+"/") // listening
	go func() {
		// The request dies with the server; its error does not matter.
		resp, err := http.Get("http://" + c.Address + "/hog")
		if err == nil {
			resp.Body.Close()
		}
	}()

	var actions []string
	for len(actions) < 2 {
		ev := next(t, events, errs, 10*time.Second)
		actions = append(actions, ev.Action)
	}
	if strings.Join(actions, ",") != "oom,die" {
		t.Errorf("events after the hog: %v, want oom, die", actions)
	}
	got, err := e.Inspect(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.OOMKilled || got.Running || got.Status != "exited" {
		t.Errorf("after the OOM kill: %+v", got)
	}
}

func TestEventsCanceled(t *testing.T) {
	t.Parallel()
	srv := fakeDocker(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // an open stream with nothing to say
	})
	e := newFakeEngine(t, srv)

	ctx, cancel := context.WithCancel(t.Context())
	events, errs := e.Events(ctx)
	time.Sleep(50 * time.Millisecond)
	cancel()
	if ev, ok := <-events; ok {
		t.Fatalf("event %+v from a stream with no events", ev)
	}
	if err := <-errs; !errors.Is(err, context.Canceled) || errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("error after cancel: %v, want context.Canceled", err)
	}
	if _, ok := <-errs; ok {
		t.Error("error channel not closed after its one error")
	}
}

func TestEventsStreamBreaks(t *testing.T) {
	t.Parallel()
	queries := make(chan string, 1)
	srv := fakeDocker(t, func(w http.ResponseWriter, r *http.Request) {
		queries <- r.URL.Query().Get("filters") + " since=" + r.URL.Query().Get("since")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":`+
			`{"exitCode":"3","nbpool.launch":"l1","nbpool.binding":"b1"}},"time":1700000000,"timeNano":1700000000123456789}`+"\n")
		// Returning ends the stream, as an engine restart does.
	})
	e := newFakeEngine(t, srv)

	events, errs := e.Events(t.Context())
	var got []engine.Event
	for ev := range events {
		got = append(got, ev)
	}
	err := <-errs
	want := engine.Event{Action: "die", ContainerID: "abc", Binding: "b1", Launch: "l1", ExitCode: 3,
		Time: time.Unix(0, 1700000000123456789)}
	if len(got) != 1 || got[0] != want {
		t.Errorf("events %+v, want [%+v]", got, want)
	}
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("error after the stream broke: %v, want ErrUnavailable", err)
	}
	t.Logf("broken stream: %v", err)
	query := <-queries
	for _, s := range []string{`"nbpool.managed=true"`, `"nbpool.instance=fake"`, `"die"`, `"oom"`, `"destroy"`, `"start"`, `"container"`} {
		if !strings.Contains(query, s) {
			t.Errorf("events query %s lacks %s", query, s)
		}
	}
	if strings.HasSuffix(query, "since=") {
		t.Errorf("events query %s has no since", query)
	}
}

// fakeDocker serves just enough of the Engine API for Events: a ping that
// reports API 1.41, and events from the given handler.
func fakeDocker(t *testing.T, events http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/_ping":
			w.Header().Set("Api-Version", "1.41")
			fmt.Fprint(w, "OK")
		case strings.HasSuffix(r.URL.Path, "/events"):
			events(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newFakeEngine(t *testing.T, srv *httptest.Server) *engine.Engine {
	t.Helper()
	e, err := engine.New(t.Context(), engine.Options{
		Host:     "tcp://" + srv.Listener.Addr().String(),
		Instance: "fake",
		Log:      zerolog.New(zerolog.NewTestWriter(t)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}
