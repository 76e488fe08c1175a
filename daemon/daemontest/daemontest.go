// Package daemontest runs nbpool daemons against the real Docker engine for
// tests, as httptest runs HTTP servers: each on its own instance name, store
// and port, cleaned up with the test.
package daemontest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon"
	"github.com/nbpool/nbpool/engine"
)

// AdminToken is the admin token of test daemons.
const AdminToken = "test-admin-token"

// FakeImage is the fake notebook server image built by `make images`.
const FakeImage = "nbpool-test/fakenb:latest"

// Network is the launch network test daemons share.
const Network = "nbpool-test"

// FakeBinding returns a binding on the fake notebook image.
func FakeBinding(name string, minPool int) api.Binding {
	b := api.Binding{
		Name:    name,
		Image:   FakeImage,
		Command: []string{"/fakenb", "--port={port}", "--base-url={base_url}", "--token={token}"},
		Limits:  api.Limits{Memory: "64m", CPUs: 0.5, Pids: 64},
		Pool:    api.PoolSpec{Min: minPool},
		Readiness: api.Readiness{
			Path: "api/status", Timeout: api.Duration(15 * time.Second),
		},
	}
	b.Normalize()
	return b
}

// Daemon is a running test daemon.
type Daemon struct {
	Config daemon.Config
	URL    string
	Client *api.Client // with the admin token
	cancel context.CancelFunc
	done   chan error
}

// RequireEngine skips the test when no Docker engine answers. CI always has
// one (.ci/run fails without it), so nothing skips silently there.
func RequireEngine(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	eng, err := engine.New(ctx, engine.Options{Instance: "probe", Network: Network, Log: zerolog.Nop()})
	if err == nil {
		err = eng.Ping(ctx)
	}
	if err != nil {
		t.Skipf("no Docker engine answers: %v", err)
	}
	eng.Close()
}

// Config returns a test config: a fresh instance name and store, a free
// port, the admin token and one fake binding with the given pool.
func Config(t testing.TB, minPool int) daemon.Config {
	cfg := daemon.Defaults()
	cfg.Instance = "t-" + randomHex(4)
	cfg.Listen = "127.0.0.1:0"
	cfg.Store = filepath.Join(t.TempDir(), "nbpool.db")
	cfg.Docker.Network = Network
	cfg.AdminToken = AdminToken
	cfg.DefaultBinding = "fake"
	cfg.Capacity = 40
	cfg.ShutdownGrace = api.Duration(5 * time.Second)
	cfg.ActivityFlush = api.Duration(500 * time.Millisecond)
	cfg.Bindings = []api.Binding{FakeBinding("fake", minPool)}
	return cfg
}

// Start runs a daemon with cfg until the test ends; at the end it stops it
// and removes the instance's containers. The config is validated first.
func Start(t testing.TB, cfg daemon.Config) *Daemon {
	t.Helper()
	RequireEngine(t)
	d := StartOnly(t, cfg)
	t.Cleanup(func() {
		d.Stop(t)
		RemoveInstance(t, cfg.Instance)
	})
	return d
}

// StartOnly runs a daemon without registering the container cleanup (for
// restart tests, which stop and start daemons of one instance themselves).
// The daemon is stopped at the end of the test if still running.
func StartOnly(t testing.TB, cfg daemon.Config) *Daemon {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	log := zerolog.Nop()
	if os.Getenv("NBPOOL_TEST_LOG") != "" {
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Str("instance", cfg.Instance).Logger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Daemon{Config: cfg, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan net.Addr, 1)
	go func() {
		d.done <- daemon.Run(ctx, cfg, log, api.Version{Version: "test"}, daemon.Hooks{
			Ready: func(a net.Addr) { ready <- a },
		})
	}()
	select {
	case addr := <-ready:
		d.URL = "http://" + addr.String()
	case err := <-d.done:
		cancel()
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("daemon did not start within 60s")
	}
	d.Client = api.NewClient(d.URL, AdminToken)
	t.Cleanup(func() { d.Stop(t) })
	return d
}

// Stop shuts the daemon down (as SIGTERM does) and waits for it. Calling it
// twice is fine.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("daemon stopped with error: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("daemon did not stop within 60s")
	}
}

// WaitPool waits until the binding's pool has want available containers.
func (d *Daemon) WaitPool(t testing.TB, binding string, want int, within time.Duration) api.Pool {
	t.Helper()
	deadline := time.Now().Add(within)
	var p api.Pool
	var err error
	for time.Now().Before(deadline) {
		p, err = d.Client.GetPool(context.Background(), binding)
		if err == nil && p.Available == want && p.Pending == 0 {
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("pool %s: want %d available, have %+v (err %v)", binding, want, p, err)
	return p
}

// Containers lists an instance's managed containers.
func Containers(t testing.TB, instance string) []engine.Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eng := instanceEngine(t, instance)
	defer eng.Close()
	cs, err := eng.List(ctx)
	if err != nil {
		t.Fatalf("list containers of %s: %v", instance, err)
	}
	return cs
}

// RemoveInstance removes every container of an instance.
func RemoveInstance(t testing.TB, instance string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	eng := instanceEngine(t, instance)
	defer eng.Close()
	cs, err := eng.List(ctx)
	if err != nil {
		t.Logf("cleanup: list %s: %v", instance, err)
	}
	for _, c := range cs {
		if err := eng.Remove(ctx, c.ID); err != nil {
			t.Logf("cleanup: remove %s: %v", c.Name, err)
		}
	}
}

func instanceEngine(t testing.TB, instance string) *engine.Engine {
	t.Helper()
	eng, err := engine.New(context.Background(), engine.Options{Instance: instance, Network: Network, Log: zerolog.Nop()})
	if err != nil {
		t.Fatalf("engine: %v", err)
	}
	return eng
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
