package engine_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nbpool/nbpool/engine"
)

// get fetches url until it answers 200 or the deadline passes; a server
// just started may need a few milliseconds to listen.
func get(t *testing.T, url string) string {
	t.Helper()
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(body)
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	s := spec(e, "run1")
	s.Cmd = []string{"/tiny", "--port=9090"}
	s.Port = 9090
	s.Env = map[string]string{"GREETING": "hello"}
	s.Labels = map[string]string{"extra": "x", engine.LabelInstance: "spoofed"}
	s.Memory = 64 << 20
	s.NanoCPUs = 500_000_000
	s.PidsLimit = 64
	s.CapAdd = []string{"NET_BIND_SERVICE"}

	start := time.Now()
	c, err := e.Run(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Run took %v", time.Since(start).Round(time.Millisecond))

	if !c.Running || c.Status != "running" || c.Name != s.Name || c.Image != testImage ||
		c.Binding != "tiny" || c.Launch != "run1" || c.IP == "" || c.Address != c.IP+":9090" ||
		time.Since(c.Created) > time.Minute {
		t.Fatalf("Run returned %+v", c)
	}
	if got := get(t, "http://"+c.Address+"/env/GREETING"); got != "hello" {
		t.Errorf("GREETING in the container = %q, want hello", got)
	}

	raw, err := docker.ContainerInspect(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{
		engine.LabelManaged: "true", engine.LabelInstance: e.Instance(),
		engine.LabelBinding: "tiny", engine.LabelLaunch: "run1", engine.LabelPort: "9090", "extra": "x",
	}
	for k, v := range wantLabels {
		if got := raw.Config.Labels[k]; got != v {
			t.Errorf("label %s = %q, want %q", k, got, v)
		}
	}
	hc := raw.HostConfig
	checks := []struct {
		what string
		ok   bool
	}{
		{"CapDrop ALL", slices.Equal(hc.CapDrop, []string{"ALL"})},
		{"CapAdd NET_BIND_SERVICE", slices.Equal(hc.CapAdd, []string{"CAP_NET_BIND_SERVICE"})},
		{"no-new-privileges", slices.Contains(hc.SecurityOpt, "no-new-privileges")},
		{"init", hc.Init != nil && *hc.Init},
		{"memory", hc.Memory == 64<<20},
		{"cpus", hc.NanoCPUs == 500_000_000},
		{"pids", hc.PidsLimit != nil && *hc.PidsLimit == 64},
		{"no restart policy", hc.RestartPolicy.IsNone()},
		{"no published ports", len(hc.PortBindings) == 0 && !hc.PublishAllPorts},
		{"launch network only", len(raw.NetworkSettings.Networks) == 1 && raw.NetworkSettings.Networks[testNetwork] != nil},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: not so in %+v, %+v", c.what, hc, raw.NetworkSettings.Networks)
		}
	}

	got, err := e.Inspect(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got != c {
		t.Errorf("Inspect = %+v, Run returned %+v", got, c)
	}
}

func TestRunConflict(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	first := mustRun(t, e, "dup")

	_, err := e.Run(t.Context(), spec(e, "dup"))
	if !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("second Run with the same name: %v, want ErrConflict", err)
	}
	t.Logf("conflict error: %v", err)
	if c, err := e.Inspect(t.Context(), first.ID); err != nil || !c.Running {
		t.Errorf("first container after the conflict: %+v, %v", c, err)
	}
}

func TestRunMissingImage(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	s := spec(e, "noimage")
	s.Image = "nbpool-test/does-not-exist:latest"
	if _, err := e.Run(t.Context(), s); !errors.Is(err, engine.ErrImageUnavailable) {
		t.Errorf("Run of a missing image: %v, want ErrImageUnavailable", err)
	}
}

func TestRemove(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	c := mustRun(t, e, "rm")

	for i := range 2 {
		start := time.Now()
		if err := e.Remove(t.Context(), c.ID); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
		t.Logf("Remove #%d took %v", i+1, time.Since(start).Round(time.Millisecond))
	}
	if _, err := e.Inspect(t.Context(), c.ID); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Inspect after Remove: %v, want ErrNotFound", err)
	}
	if err := e.Remove(t.Context(), "nbpool-never-existed-"+runID); err != nil {
		t.Errorf("Remove of a container that never existed: %v", err)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	mine, other := newEngine(t), newEngine(t)
	running := mustRun(t, mine, "running")
	stopped := mustRun(t, mine, "stopped")
	stranger := mustRun(t, other, "stranger")
	if err := docker.ContainerKill(t.Context(), stopped.ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	waitExited(t, stopped.ID)

	start := time.Now()
	list, err := mine.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("List took %v", time.Since(start).Round(time.Millisecond))
	byID := map[string]engine.Container{}
	for _, c := range list {
		byID[c.ID] = c
	}
	if len(list) != 2 || byID[running.ID].ID == "" || byID[stopped.ID].ID == "" {
		t.Fatalf("List = %+v, want exactly %s and %s", list, running.ID[:12], stopped.ID[:12])
	}
	if got := byID[running.ID]; got.Address != running.Address || !got.Running || got.Launch != "running" ||
		got.Binding != "tiny" || got.Name != running.Name || got.Image != testImage {
		t.Errorf("running container listed as %+v, want like %+v", got, running)
	}
	if got := byID[stopped.ID]; got.Running || got.Status != "exited" || got.ExitCode != 137 || got.Address != "" {
		t.Errorf("killed container listed as %+v", got)
	}

	// What a restart reconcile does with the list must not touch the other
	// instance.
	for _, c := range list {
		if err := mine.Remove(t.Context(), c.ID); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := other.Inspect(t.Context(), stranger.ID); err != nil || !c.Running {
		t.Errorf("other instance's container after this one's cleanup: %+v, %v", c, err)
	}
	if list, err := mine.List(t.Context()); err != nil || len(list) != 0 {
		t.Errorf("List after removing all: %+v, %v", list, err)
	}
}

// waitExited waits until Docker reports the container as exited.
func waitExited(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		c, err := docker.ContainerInspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.State.Status == "exited" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
