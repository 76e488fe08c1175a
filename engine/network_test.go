package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/rs/zerolog"

	"github.com/nbpool/nbpool/engine"
)

func TestEnsureNetwork(t *testing.T) {
	t.Parallel()
	needEngine(t)
	name := "nbpool-enginetest-" + runID + "-ensure"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := removeNetworks(ctx, name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	// Several daemons creating the network at once all succeed, and only
	// one network comes out of it.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		e, err := engine.New(t.Context(), engine.Options{
			Network: name, Instance: "ensure", Log: zerolog.New(zerolog.NewTestWriter(t)),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		wg.Go(func() { errs[i] = e.EnsureNetwork(t.Context()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent EnsureNetwork #%d: %v", i, err)
		}
	}

	e, err := engine.New(t.Context(), engine.Options{Network: name, Instance: "ensure"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	start := time.Now()
	if err := e.EnsureNetwork(t.Context()); err != nil {
		t.Fatalf("EnsureNetwork on an existing network: %v", err)
	}
	t.Logf("EnsureNetwork on an existing network took %v", time.Since(start).Round(time.Millisecond))

	list, err := docker.NetworkList(t.Context(), network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
	if err != nil {
		t.Fatal(err)
	}
	var same []network.Summary
	for _, n := range list {
		if n.Name == name {
			same = append(same, n)
		}
	}
	if len(same) != 1 {
		t.Fatalf("%d networks named %s, want 1", len(same), name)
	}
	n := same[0]
	if n.Driver != "bridge" || n.Options["com.docker.network.bridge.enable_icc"] != "false" ||
		n.Labels[engine.LabelManaged] != "true" {
		t.Errorf("network: driver %q, options %v, labels %v; want bridge, icc off, managed", n.Driver, n.Options, n.Labels)
	}
}

// createDuplicateNetwork creates a bridge network named name even when one
// exists, as concurrent creates on an engine before API 1.44 do. The SDK
// always asks such engines to check for duplicates, so this goes around it.
func createDuplicateNetwork(t *testing.T, name string) string {
	t.Helper()
	u, err := client.ParseHostURL(docker.DaemonHost())
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + u.Host
	if u.Scheme == "unix" || u.Scheme == "npipe" {
		base = "http://docker"
	}
	body := fmt.Sprintf(`{"Name":%q,"Driver":"bridge","CheckDuplicate":false}`, name)
	resp, err := docker.HTTPClient().Post(base+"/v1.41/networks/create", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var created struct {
		ID string `json:"Id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || created.ID == "" {
		t.Fatalf("create duplicate network %s: %s, %v", name, resp.Status, err)
	}
	return created.ID
}

// A container create that succeeds and a start that fails must leave no
// container behind. An engine before API 1.44 fails the start when two
// networks share the name the container was created with.
func TestRunFailedStartLeavesNothing(t *testing.T) {
	t.Parallel()
	needEngine(t)
	name := "nbpool-enginetest-" + runID + "-ambiguous"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := removeNetworks(ctx, name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	createDuplicateNetwork(t, name)
	createDuplicateNetwork(t, name)

	e, err := engine.New(t.Context(), engine.Options{Network: name, Instance: "enginetest-" + runID + "-ambiguous"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s := spec(e, "nostart")
	_, err = e.Run(t.Context(), s) // by name: EnsureNetwork was not called
	if err == nil {
		t.Fatal("Run on an ambiguous network name succeeded")
	}
	t.Logf("Run: %v", err)
	if _, err := e.Inspect(t.Context(), s.Name); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("container after a failed start: %v, want ErrNotFound", err)
	}
}

// Once EnsureNetwork selected a network, a duplicate of its name (another
// daemon's concurrent create) does not stop Run.
func TestRunBesideDuplicateNetwork(t *testing.T) {
	t.Parallel()
	needEngine(t)
	name := "nbpool-enginetest-" + runID + "-dup"
	instance := "enginetest-" + runID + "-dup"
	t.Cleanup(func() {
		removeInstance(t, instance)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := removeNetworks(ctx, name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	e, err := engine.New(t.Context(), engine.Options{
		Network: name, Instance: instance, Log: zerolog.New(zerolog.NewTestWriter(t)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.EnsureNetwork(t.Context()); err != nil {
		t.Fatal(err)
	}
	createDuplicateNetwork(t, name)

	c := mustRun(t, e, "beside")
	get(t, "http://"+c.Address+"/")
	// The duplicate is not nbpool's: it is left alone, and the older network
	// stays selected.
	if err := e.EnsureNetwork(t.Context()); err != nil {
		t.Fatalf("EnsureNetwork beside a duplicate: %v", err)
	}
	if c2 := mustRun(t, e, "beside2"); c2.IP == "" {
		t.Errorf("second container has no IP: %+v", c2)
	}
}
