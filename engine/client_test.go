package engine_test

import (
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nbpool/nbpool/engine"
)

func TestUnavailable(t *testing.T) {
	t.Parallel()
	e, err := engine.New(t.Context(), engine.Options{
		Host:     "unix:///nonexistent.sock",
		Instance: "nowhere",
		Log:      zerolog.New(zerolog.NewTestWriter(t)),
		Timeout:  2 * time.Second,
	})
	if err != nil {
		t.Fatalf("New must not need an engine: %v", err)
	}
	defer e.Close()

	err = e.Ping(t.Context())
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("Ping: %v, want ErrUnavailable", err)
	}
	t.Logf("Ping: %v", err)
	if _, err := e.List(t.Context()); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("List: %v, want ErrUnavailable", err)
	}
	if _, err := e.Inspect(t.Context(), "x"); !errors.Is(err, engine.ErrUnavailable) || errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Inspect: %v, want ErrUnavailable only", err)
	}
	if err := e.Remove(t.Context(), "x"); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("Remove: %v, want ErrUnavailable (not the nil of an already gone container)", err)
	}
	if err := e.EnsureImage(t.Context(), "x"); !errors.Is(err, engine.ErrUnavailable) || errors.Is(err, engine.ErrImageUnavailable) {
		t.Errorf("EnsureImage: %v, want ErrUnavailable only", err)
	}
	if err := e.EnsureNetwork(t.Context()); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("EnsureNetwork: %v, want ErrUnavailable", err)
	}
	if _, err := e.Run(t.Context(), engine.Spec{Name: "x", Image: "x"}); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("Run: %v, want ErrUnavailable", err)
	}

	events, errs := e.Events(t.Context())
	if ev, ok := <-events; ok {
		t.Errorf("event %+v from an engine that is not there", ev)
	}
	if err := <-errs; !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("Events: %v, want ErrUnavailable", err)
	}
}

func TestNewNeedsInstance(t *testing.T) {
	if _, err := engine.New(t.Context(), engine.Options{}); err == nil {
		t.Error("New without an instance name succeeded")
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	start := time.Now()
	if err := e.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("Ping took %v", time.Since(start).Round(time.Millisecond))
}
