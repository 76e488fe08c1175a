package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nbpool/nbpool/daemon/daemontest"
)

// TestProxyMeasure measures, for the note, keep-alive GETs of
// fakenb's <base>small with wrk (-t2 -c32 -d10s --latency) through the
// daemon (the built binary) and directly to the same container, in one
// run, alternating. It asserts nothing but that every answer was a 200.
// Run it by hand:
//
//	NBPOOL_MEASURE=1 go test ./e2e/ -run ProxyMeasure -v -count=1
//
// NBPOOL_MEASURE_DURATION (default 10s) and NBPOOL_MEASURE_ROUNDS (default
// 2) change the runs. With more than two cores (or NBPOOL_MEASURE_PIN=1;
// =0 never pins), wrk is pinned to CPU 0 and the daemon to CPU 1 with
// taskset; fakenb is not pinned. The container has no CPU quota here, so
// the figures show the proxy, not the quota.
func TestProxyMeasure(t *testing.T) {
	if os.Getenv("NBPOOL_MEASURE") != "1" {
		t.Skip("a measurement, not a test: set NBPOOL_MEASURE=1")
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		t.Fatal("wrk is missing: contrib/deps.sh installs it")
	}
	duration := os.Getenv("NBPOOL_MEASURE_DURATION")
	if duration == "" {
		duration = "10s"
	}
	rounds := 2
	if v, err := strconv.Atoi(os.Getenv("NBPOOL_MEASURE_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}

	daemontest.RequireEngine(t)
	cfg := pxConfig(t, 1, false)
	cfg.Bindings[0].Limits.CPUs = 0 // no quota: measure the proxy, not the limit
	cfg.Bindings[0].Limits.Memory = "256m"
	t.Cleanup(func() { daemontest.RemoveInstance(t, cfg.Instance) })
	p := daemontest.StartProcess(t, cfg)
	pxWaitPool(t, p.Client, 1)
	l := pxSpawn(t, p.Client)

	ncpu := runtime.NumCPU()
	pin := ncpu > 2
	if v := os.Getenv("NBPOOL_MEASURE_PIN"); v != "" {
		pin = v == "1"
	}
	wrkCmd := []string{wrk}
	if pin {
		if out, err := exec.Command("taskset", "-a", "-p", "-c", "1", strconv.Itoa(p.PID())).CombinedOutput(); err != nil {
			t.Fatalf("taskset the daemon: %v %s", err, out)
		}
		wrkCmd = []string{"taskset", "-c", "0", wrk}
	}
	t.Logf("%d CPUs; pinned (wrk CPU 0, daemon CPU 1): %v; fakenb container without CPU quota", ncpu, pin)
	loadavg := func() string { b, _ := os.ReadFile("/proc/loadavg"); return strings.TrimSpace(string(b)) }
	t.Logf("load average before: %s", loadavg())
	defer func() { t.Logf("load average after: %s", loadavg()) }()

	auth := "Authorization: token " + l.Token
	targets := []struct{ name, url string }{
		{"direct", "http://" + l.Address + l.Location + "small"},
		{"proxied", p.URL + l.Location + "small"},
		{"proxied+cookie", p.URL + l.Location + "small"},
	}
	type result struct{ rps, p50, p99 []float64 }
	results := map[string]*result{}
	for round := range rounds {
		for _, tg := range targets {
			args := append(append([]string{}, wrkCmd[1:]...), "-t2", "-c32", "-d"+duration, "--latency", "-H", auth)
			if strings.HasSuffix(tg.name, "cookie") {
				args = append(args, "-H", "Cookie: nbpool-token="+l.Token)
			}
			out, err := exec.Command(wrkCmd[0], append(args, tg.url)...).CombinedOutput()
			if err != nil {
				t.Fatalf("wrk: %v\n%s", err, out)
			}
			rps, p50, p99, err := pxParseWrk(string(out))
			if err != nil {
				t.Fatalf("%s: %v\n%s", tg.name, err, out)
			}
			t.Logf("round %d %-15s %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms", round+1, tg.name, rps, p50, p99)
			r := results[tg.name]
			if r == nil {
				r = &result{}
				results[tg.name] = r
			}
			r.rps, r.p50, r.p99 = append(r.rps, rps), append(r.p50, p50), append(r.p99, p99)
			time.Sleep(time.Second)
		}
	}
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	d := results["direct"]
	for _, tg := range targets {
		r := results[tg.name]
		t.Logf("mean %-15s %9.0f req/s (%.2f of direct)  p50 %6.3f ms  p99 %6.3f ms",
			tg.name, mean(r.rps), mean(r.rps)/mean(d.rps), mean(r.p50), mean(r.p99))
	}
}

var (
	pxWrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	pxWrkLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// pxParseWrk reads requests/s and the 50th and 99th latency percentiles
// (ms) from wrk's --latency output, and fails on any non-2xx answer or
// socket error.
func pxParseWrk(out string) (rps, p50, p99 float64, err error) {
	if strings.Contains(out, "Non-2xx") || strings.Contains(out, "Socket errors") {
		return 0, 0, 0, fmt.Errorf("wrk saw errors")
	}
	m := pxWrkRPS.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, 0, fmt.Errorf("no Requests/sec")
	}
	rps, _ = strconv.ParseFloat(m[1], 64)
	scale := map[string]float64{"us": 1e-3, "ms": 1, "s": 1e3}
	for _, m := range pxWrkLatency.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		if m[1] == "50" {
			p50 = v * scale[m[3]]
		} else {
			p99 = v * scale[m[3]]
		}
	}
	if p99 == 0 {
		return 0, 0, 0, fmt.Errorf("no 99%% latency")
	}
	return rps, p50, p99, nil
}
