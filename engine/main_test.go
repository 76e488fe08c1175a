package engine_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/rs/zerolog"

	"github.com/nbpool/nbpool/engine"
)

// testImage is built by TestMain from testdata/tiny: a static HTTP server
// answering 200 on any path, in a FROM scratch image.
const testImage = "nbpool-test/engine-tiny:latest"

var (
	// docker is a plain SDK client for the tests' own checks and cleanup.
	docker *client.Client
	// noEngine is why the engine tests skip; empty when an engine answers.
	noEngine string
	// runID makes this run's instance and network names unique.
	runID string
	// testNetwork is the launch network shared by this run's engines.
	testNetwork string
	instances   atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	var b [4]byte
	_, _ = rand.Read(b[:])
	runID = hex.EncodeToString(b[:])
	testNetwork = "nbpool-enginetest-" + runID

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var err error
	docker, err = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		fmt.Fprintln(os.Stderr, "docker client:", err)
		return 1
	}
	defer docker.Close()
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = docker.Ping(pctx)
	pcancel()
	if err != nil {
		noEngine = fmt.Sprintf("no Docker engine answers at %s (%v); the engine tests need one", docker.DaemonHost(), err)
		return m.Run()
	}

	start := time.Now()
	if err := buildTestImage(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "build", testImage+":", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "built %s in %v\n", testImage, time.Since(start).Round(time.Millisecond))

	code := m.Run()

	// Containers are removed by each test's cleanup; the shared network last.
	if err := removeNetworks(ctx, testNetwork); err != nil {
		fmt.Fprintln(os.Stderr, "remove network", testNetwork+":", err)
	}
	return code
}

// removeNetworks removes every network with exactly this name.
func removeNetworks(ctx context.Context, name string) error {
	list, err := docker.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range list {
		if n.Name == name {
			errs = append(errs, docker.NetworkRemove(ctx, n.ID))
		}
	}
	return errors.Join(errs...)
}

// buildTestImage compiles testdata/tiny statically and builds testImage from
// it with the legacy builder, which needs no registry for FROM scratch.
func buildTestImage(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "engine-tiny-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "tiny")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./testdata/tiny")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return err
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY tiny /tiny\nCMD [\"/tiny\", \"--port=8888\"]\n")},
		{"tiny", 0o755, binary},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}

	resp, err := docker.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags:        []string{testImage},
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}

// needEngine skips the test when no Docker engine answers.
func needEngine(t *testing.T) {
	t.Helper()
	if noEngine != "" {
		t.Skip(noEngine)
	}
}

// newEngine returns an Engine with an instance name of its own on this run's
// network; the instance's containers are removed when the test ends.
func newEngine(t *testing.T) *engine.Engine {
	t.Helper()
	needEngine(t)
	instance := fmt.Sprintf("enginetest-%s-%d", runID, instances.Add(1))
	e, err := engine.New(t.Context(), engine.Options{
		Network:  testNetwork,
		Instance: instance,
		Log:      zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel),
		Timeout:  20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		removeInstance(t, instance)
		_ = e.Close()
	})
	if err := e.EnsureNetwork(t.Context()); err != nil {
		t.Fatal(err)
	}
	return e
}

// removeInstance force-removes every container of an instance, whatever
// state the test left them in.
func removeInstance(t *testing.T, instance string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := docker.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", engine.LabelInstance+"="+instance)),
	})
	if err != nil {
		t.Errorf("cleanup: list containers of %s: %v", instance, err)
		return
	}
	for _, c := range list {
		err := docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !strings.Contains(err.Error(), "No such container") && !strings.Contains(err.Error(), "already in progress") {
			t.Errorf("cleanup: remove %s: %v", c.ID[:12], err)
		}
	}
}

// spec returns a Spec for the test image with a name unique to the engine.
func spec(e *engine.Engine, launch string) engine.Spec {
	return engine.Spec{
		Name:    "nbpool-" + e.Instance() + "-" + launch,
		Image:   testImage,
		Binding: "tiny",
		Launch:  launch,
		Port:    8888,
	}
}

// mustRun starts a container from spec(e, launch) or fails the test.
func mustRun(t *testing.T, e *engine.Engine, launch string) engine.Container {
	t.Helper()
	c, err := e.Run(t.Context(), spec(e, launch))
	if err != nil {
		t.Fatalf("run %s: %v", launch, err)
	}
	return c
}
