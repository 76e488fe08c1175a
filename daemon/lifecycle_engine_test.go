package daemon_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon/daemontest"
)

// The daemon refuses to start without an engine: it exits non-zero at once
// with one message that names the engine address and what to check.
func TestNoEngineRefusesToStart(t *testing.T) {
	for _, host := range []string{"unix:///nonexistent/docker.sock", "tcp://127.0.0.1:1"} {
		t.Run(host, func(t *testing.T) {
			cfg := daemontest.Config(t, 1)
			cfg.Listen = daemontest.FreeAddr(t)
			path := daemontest.WriteConfig(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, daemontest.Binary(t), "serve", "--config", path)
			cmd.Env = append(os.Environ(), "DOCKER_HOST="+host, "NBPOOL_LOG_FORMAT=json")
			start := time.Now()
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("want a non-zero exit, have %v:\n%s", err, out)
			}
			last := lastLine(string(out))
			t.Logf("exit %d after %s: %s", exit.ExitCode(), time.Since(start).Round(time.Millisecond), last)
			for _, want := range []string{"docker", strings.TrimPrefix(strings.TrimPrefix(host, "unix://"), "tcp://"), "DOCKER_HOST", "dockerd"} {
				if !strings.Contains(strings.ToLower(last), strings.ToLower(want)) {
					t.Errorf("the message does not say %q: %s", want, last)
				}
			}
			if time.Since(start) > 10*time.Second {
				t.Errorf("took %s to give up", time.Since(start))
			}
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// The engine goes away while nbpool runs (a socket door in front of the
// shared dockerd is shut): health turns degraded, warm claims still work
// and open, a cold start answers 503 engineUnavailable with suggestions. A
// claimed container killed meanwhile (its event missed) is found dead when
// the engine is back: its launch ends, the pool refills, cold starts work
// again, and nbpool_engine_errors_total counted the outage.
func TestEngineLossAndReturn(t *testing.T) {
	daemontest.RequireEngine(t)
	door := newEngineDoor(t)
	cfg := daemontest.Config(t, 2)
	cfg.Docker.Host = "unix://" + door.path
	d := daemontest.Start(t, cfg)
	ctx := context.Background()
	d.WaitPool(t, "fake", 2, 30*time.Second)
	victim := claimWarm(t, d.Client, "fake")
	d.WaitPool(t, "fake", 2, 30*time.Second)

	door.shut()
	lost := time.Now()
	waitFor(t, 10*time.Second, "the event loop notices the outage", func() bool {
		return metricValue(t, d.URL, "nbpool_engine_errors_total") >= 1
	})
	t.Logf("outage noticed after %s", time.Since(lost).Round(time.Millisecond))
	if h, err := d.Client.Health(ctx); err == nil && h.Status == "ok" {
		t.Errorf("health during the outage: %+v", h)
	}
	warm := claimWarm(t, d.Client, "fake")
	wantOpens(t, d.URL, warm)
	claimWarm(t, d.Client, "fake") // the last warm one
	_, status, err := d.Client.Spawn(ctx, "fake", api.SpawnRequest{})
	var e *api.Error
	if !errors.As(err, &e) || e.Name != api.ErrEngineUnavailable.Name || status != http.StatusServiceUnavailable || len(e.Suggestions) == 0 {
		t.Fatalf("cold start during the outage: want 503 engineUnavailable with suggestions, have %d %v", status, err)
	}
	t.Logf("cold start during the outage: %d %s: %s; suggestions %q", status, e.Name, e.Message, e.Suggestions)
	resp, err := http.Post(d.URL+"/api/spawn/", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("tmpnb spawn during the outage: %d, want 503", resp.StatusCode)
	}
	dockerKill(t, victim.ContainerID) // the daemon cannot hear of it

	door.open(t)
	back := time.Now()
	ended := waitEnded(t, d.Client, "fake", victim.ID, 30*time.Second)
	t.Logf("engine back: the launch killed during the outage ended %s later (%s)", time.Since(back).Round(time.Millisecond), ended.EndReason)
	if ended.EndReason != api.EndDied {
		t.Errorf("launch killed during the outage: want died, have %q", ended.EndReason)
	}
	d.WaitPool(t, "fake", 2, 30*time.Second)
	if h, err := d.Client.Health(ctx); err != nil || h.Status != "ok" {
		t.Errorf("health after the engine came back: %+v %v", h, err)
	}
	wantOpens(t, d.URL, warm)
	coldClaim(t, d, "cold start after the engine came back")
}

// coldClaim empties the pool of the fake binding, cold-starts a launch
// (202) and returns it once it is claimed; what names the start in a
// failure.
func coldClaim(t *testing.T, d *daemontest.Daemon, what string) api.Launch {
	t.Helper()
	ctx := context.Background()
	if _, err := d.Client.SetPool(ctx, "fake", api.PoolUpdate{MinPool: new(0)}); err != nil {
		t.Fatal(err)
	}
	d.WaitPool(t, "fake", 0, 30*time.Second)
	l, status, err := d.Client.Spawn(ctx, "fake", api.SpawnRequest{})
	if err != nil || status != http.StatusAccepted {
		t.Fatalf("%s: %d %v", what, status, err)
	}
	waitFor(t, 30*time.Second, what+" is claimed", func() bool {
		cur, err := d.Client.Launch(ctx, "fake", l.ID)
		if err == nil && cur.State == api.StateClaimed {
			l = cur
			return true
		}
		return false
	})
	return l
}

// After some activity /metrics has the metrics with the right
// labels and values: launches by state, spawn latency warm and cold, pool
// min, proxy requests and open websockets, ends by reason, engine errors.
func TestMetricsAfterActivity(t *testing.T) {
	d := daemontest.Start(t, daemontest.Config(t, 1))
	ctx := context.Background()
	d.WaitPool(t, "fake", 1, 30*time.Second)
	warm := claimWarm(t, d.Client, "fake")
	cold := coldClaim(t, d, "cold spawn")
	wantOpens(t, d.URL, warm)
	ws := dialEcho(t, d.URL, warm, "metrics")
	defer ws.conn.Close()
	if _, err := d.Client.StopLaunch(ctx, "fake", cold.ID); err != nil {
		t.Fatal(err)
	}

	text := scrape(t, d.URL)
	for _, tc := range []struct {
		series string
		want   func(float64) bool
		what   string
	}{
		{`nbpool_launches{binding="fake",state="claimed"}`, eq(1), "1"},
		{`nbpool_launches{binding="fake",state="available"}`, eq(0), "0"},
		{`nbpool_spawn_seconds_count{binding="fake",kind="warm"}`, eq(1), "1"},
		{`nbpool_spawn_seconds_count{binding="fake",kind="cold"}`, eq(1), "1"},
		{`nbpool_pool_min{binding="fake"}`, eq(0), "0"},
		{`nbpool_proxy_requests_total`, func(v float64) bool { return v >= 3 }, ">= 3"},
		{`nbpool_proxy_websockets_open`, eq(1), "1"},
		{`nbpool_launches_ended_total{binding="fake",reason="stopped"}`, eq(1), "1"},
		{`nbpool_engine_errors_total`, eq(0), "0"},
		// The live heap after the last GC, for leak watching (the bench reads it).
		{`go_gc_heap_live_bytes`, func(v float64) bool { return v > 0 }, "> 0"},
	} {
		v, ok := seriesValue(text, tc.series)
		if !ok || !tc.want(v) {
			t.Errorf("%s: want %s, have %v (present %v)", tc.series, tc.what, v, ok)
		}
	}
	if !strings.Contains(text, `nbpool_spawn_seconds_bucket{binding="fake",kind="cold",le=`) {
		t.Error("no histogram buckets for cold spawns")
	}
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }

// scrape GETs /metrics.
func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// seriesValue finds a series (name and labels as exposed) in a scrape.
func seriesValue(text, series string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// metricValue scrapes one unlabelled series; -1 when it is missing.
func metricValue(t *testing.T, base, series string) float64 {
	v, ok := seriesValue(scrape(t, base), series)
	if !ok {
		return -1
	}
	return v
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// engineDoor is a unix socket in front of the Docker socket that a test can
// shut and open again: for the daemon behind it the engine goes away and
// comes back, while the shared dockerd runs on.
type engineDoor struct {
	path, target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

func newEngineDoor(t *testing.T) *engineDoor {
	target := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		var ok bool
		if target, ok = strings.CutPrefix(h, "unix://"); !ok {
			t.Skipf("DOCKER_HOST %s is not a unix socket", h)
		}
	}
	dir, err := os.MkdirTemp("", "nbpool-door-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &engineDoor{path: filepath.Join(dir, "docker.sock"), target: target, conns: map[net.Conn]struct{}{}}
	d.open(t)
	t.Cleanup(d.shut)
	return d
}

// open listens and relays every connection to the Docker socket.
func (d *engineDoor) open(t *testing.T) {
	ln, err := net.Listen("unix", d.path)
	if err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.ln = ln
	d.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go d.relay(c)
		}
	}()
}

func (d *engineDoor) relay(c net.Conn) {
	up, err := net.Dial("unix", d.target)
	if err != nil {
		c.Close()
		return
	}
	d.mu.Lock()
	d.conns[c], d.conns[up] = struct{}{}, struct{}{}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.conns, c)
		delete(d.conns, up)
		d.mu.Unlock()
		c.Close()
		up.Close()
	}()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// shut stops listening (the socket file goes) and cuts every connection.
func (d *engineDoor) shut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ln != nil {
		d.ln.Close()
		d.ln = nil
	}
	for c := range d.conns {
		c.Close()
	}
}
