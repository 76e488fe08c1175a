package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/proxy"
)

// proxyConns is the number of keep-alive connections of the HTTP loads.
const proxyConns = 32

// load is one HTTP load of the proxy scenario.
type load struct {
	name string
	l    api.Launch
	path string // under the launch's location
	// target is nbpool's goal against direct; vsHTTPUtil, vsCHP and p99 are
	// set for the small load only.
	target, vsHTTPUtil, vsCHP, p99 float64
}

// proxyTarget is one way to reach the backend.
type proxyTarget struct {
	name string
	base string // scheme://host:port; the path is the launch's
}

// proxyRun is one target's figures for one load (medians over rounds).
type proxyRun struct {
	Target string      `json:"target"`
	RPS    float64     `json:"rps"`
	P50Ms  float64     `json:"p50Ms"`
	P99Ms  float64     `json:"p99Ms"`
	Runs   []wrkResult `json:"runs"`
}

// runProxy measures the HTTP loads and the websocket echo through nbpool,
// directly, through configurable-http-proxy, nginx and a plain httputil
// proxy, all in front of the same containers. The daemon and the proxies
// run pinned to the proxy CPUs, wrk and the websocket load generator to the
// client CPUs.
func runProxy(ctx context.Context, e *env) ([]row, error) {
	d, err := startDaemon(ctx, e, e.m.ServerCPUs, 10, e.fake, e.jupyter)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	// Empty pools: nothing but the proxy works in the daemon while measuring.
	fake, err := d.claim(ctx, e.fake.Name)
	if err != nil {
		return nil, fmt.Errorf("claim fake: %w", err)
	}
	jup, err := d.claim(ctx, e.jupyter.Name)
	if err != nil {
		return nil, fmt.Errorf("claim jupyter: %w", err)
	}
	backends := []backend{{fake.Location, fake.Address}, {jup.Location, jup.Address}}
	// With -pin-containers the notebook containers count as the server
	// side: they share the proxy CPUs. By default the kernel places them.
	if e.pinContainers && e.m.ServerCPUs != "" {
		for _, l := range []api.Launch{fake, jup} {
			if err := pinContainer(ctx, l.ContainerID, e.m.ServerCPUs); err != nil {
				return nil, err
			}
		}
	}

	targets := map[string][]proxyTarget{}
	var helpers []*helper
	defer func() {
		for _, h := range helpers {
			h.stop()
		}
	}()
	var setupErrs []error
	for _, l := range []api.Launch{fake, jup} {
		targets[l.ID] = []proxyTarget{{"direct", "http://" + l.Address}, {"nbpool", d.URL}}
		h, err := startHTTPUtil(ctx, e, backend{l.Location, l.Address})
		if err != nil {
			setupErrs = append(setupErrs, err)
			continue
		}
		helpers = append(helpers, h)
		targets[l.ID] = append(targets[l.ID], proxyTarget{"httputil", h.URL})
	}
	for _, start := range []struct {
		name string
		fn   func(context.Context, *env, []backend) (*helper, error)
	}{{"nginx", startNginx}, {"CHP", startCHP}} {
		h, err := start.fn(ctx, e, backends)
		if err != nil {
			setupErrs = append(setupErrs, err)
			logf("proxy: %v", err)
			continue
		}
		helpers = append(helpers, h)
		for _, l := range []api.Launch{fake, jup} {
			targets[l.ID] = append(targets[l.ID], proxyTarget{start.name, h.URL})
		}
	}

	loads := []load{
		{name: "small", l: fake, path: "small", target: 0.3, vsHTTPUtil: 1.3, vsCHP: 5, p99: 2},
		{name: "1 MiB", l: fake, path: "bytes/1048576", target: 0.8},
		{name: "Jupyter api/status", l: jup, path: "api/status", target: 0.9},
	}
	machine := e.m.pinned("wrk")
	var rows []row
	errs := setupErrs
	results := map[string]map[string]proxyRun{}
	for _, ld := range loads {
		runs, err := measureLoad(ctx, e, ld, targets[ld.l.ID], d.PID())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ld.name, err))
			rows = append(rows, failedRow("proxy HTTP, "+ld.name, err, machine))
			continue
		}
		results[ld.name] = runs
		rows = append(rows, loadRows(ld, runs, machine)...)
	}
	e.details["proxyHTTP"] = map[string]any{"connections": proxyConns, "loads": results,
		"loadGenerator": "wrk (Debian) with a Lua summary script"}

	wsRows, err := runWebsocket(ctx, e, fake, targets[fake.ID])
	rows = append(rows, wsRows...)
	if err != nil {
		errs = append(errs, fmt.Errorf("websocket: %w", err))
	}
	return rows, errors.Join(errs...)
}

// measureLoad runs wrk against every target, rounds times, rotating the
// order each round, after a warm-up run per target in full mode.
func measureLoad(ctx context.Context, e *env, ld load, targets []proxyTarget, pid int) (map[string]proxyRun, error) {
	headers := []string{"Authorization: token " + ld.l.Token, "Cookie: " + proxy.CookieName + "=" + ld.l.Token}
	path := strings.TrimSuffix(ld.l.Location, "/") + "/" + ld.path
	dur := pick(e, 6*time.Second, time.Second)
	if e.loadDuration > 0 {
		dur = e.loadDuration
	}
	rounds := pick(e, 3, 1)
	if !e.quick {
		for _, t := range targets {
			if _, err := runWrk(ctx, e, t.base+path, headers, proxyConns, time.Second); err != nil {
				return nil, fmt.Errorf("warm-up %s: %w", t.name, err)
			}
		}
	}
	all := map[string][]wrkResult{}
	for r := range rounds {
		for i := range targets {
			t := targets[(i+r)%len(targets)]
			var prof *profiler
			if e.perfDir != "" && r == 0 && t.name == "nbpool" {
				prof = startPerf(e, pid, ld.name, dur)
			}
			res, err := runWrk(ctx, e, t.base+path, headers, proxyConns, dur)
			prof.finish()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
			logf("proxy %s via %s: %.0f req/s, p99 %.2f ms", ld.name, t.name, res.RPS(), res.P99Us/1000)
			all[t.name] = append(all[t.name], res)
		}
	}
	out := map[string]proxyRun{}
	for name, rs := range all {
		var rps, p50, p99 []float64
		for _, r := range rs {
			rps = append(rps, r.RPS())
			p50 = append(p50, r.P50Us/1000)
			p99 = append(p99, r.P99Us/1000)
		}
		out[name] = proxyRun{Target: name, RPS: median(rps), P50Ms: median(p50), P99Ms: median(p99), Runs: rs}
	}
	return out, nil
}

// loadRows holds nbpool's request rate against each baseline.
func loadRows(ld load, runs map[string]proxyRun, machine string) []row {
	nb, ok := runs["nbpool"]
	if !ok {
		return nil
	}
	name := "proxy HTTP, " + ld.name + ", req/s"
	var rows []row
	for _, b := range []struct {
		name string
		want float64
	}{{"direct", ld.target}, {"httputil", ld.vsHTTPUtil}, {"CHP", ld.vsCHP}, {"nginx", 0}} {
		if base, ok := runs[b.name]; ok {
			rows = append(rows, ratioRow(name+" vs "+b.name, "req/s", nb.RPS, base.RPS, b.name, atLeast, b.want, machine))
		}
	}
	if direct, ok := runs["direct"]; ok && ld.p99 > 0 {
		rows = append(rows, ratioRow("proxy HTTP, "+ld.name+", p99 vs direct", "ms", nb.P99Ms, direct.P99Ms, "direct",
			atMost, ld.p99, machine))
	}
	return rows
}

// pinContainer restricts a running container to cpus (docker update
// --cpuset-cpus; the engine package has no call for it, and nbpool never
// needs one).
func pinContainer(ctx context.Context, id, cpus string) error {
	out, err := exec.CommandContext(ctx, "docker", "update", "--cpuset-cpus", cpus, id).CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker update --cpuset-cpus %s %s: %w: %s", cpus, id, err, out)
	}
	return nil
}
