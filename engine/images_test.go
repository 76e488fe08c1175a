package engine_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nbpool/nbpool/engine"
)

func TestEnsureImage(t *testing.T) {
	t.Parallel()
	e := newEngine(t)

	start := time.Now()
	if err := e.EnsureImage(t.Context(), testImage); err != nil {
		t.Fatalf("EnsureImage of a local image: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("EnsureImage of a local image took %v", took)
	} else {
		t.Logf("EnsureImage of a local image took %v", took.Round(time.Millisecond))
	}

	const missing = "nbpool-test/does-not-exist:latest"
	start = time.Now()
	err := e.EnsureImage(t.Context(), missing)
	t.Logf("EnsureImage of a missing image took %v: %v", time.Since(start).Round(time.Millisecond), err)
	if !errors.Is(err, engine.ErrImageUnavailable) {
		t.Fatalf("EnsureImage of a missing image: %v, want ErrImageUnavailable", err)
	}
	if errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("a failed pull reads as an engine that does not answer: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, missing) || !strings.Contains(msg, "cannot be pulled") {
		t.Errorf("error %q should name the image and say it cannot be pulled", msg)
	}
}
