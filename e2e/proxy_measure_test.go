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
// run, alternating: "proxied" sends the token in the Authorization header
// (an API client; the proxy sets its cookie on every answer), and
// "proxied+cookie" the nbpool-token cookie too (a browser after its first
// request). Besides wrk's req/s and latency it reports the CPU time per
// request of the daemon (from /proc) and of fakenb (from its cgroup), which
// a busy machine disturbs less than throughput, and the load average. It
// asserts nothing but that every answer was a 200. Run it by hand:
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
	type result struct{ rps, p50, p99, cpu, nbCPU []float64 }
	results := map[string]*result{}
	for round := range rounds {
		for _, tg := range targets {
			args := append(append([]string{}, wrkCmd[1:]...), "-t2", "-c32", "-d"+duration, "--latency", "-H", auth)
			if strings.HasSuffix(tg.name, "cookie") {
				args = append(args, "-H", "Cookie: nbpool-token="+l.Token)
			}
			cpu0, nb0 := pxCPUTime(t, p.PID()), pxContainerCPU(l.ContainerID)
			out, err := exec.Command(wrkCmd[0], append(args, tg.url)...).CombinedOutput()
			if err != nil {
				t.Fatalf("wrk: %v\n%s", err, out)
			}
			cpu, nbCPU := pxCPUTime(t, p.PID())-cpu0, pxContainerCPU(l.ContainerID)-nb0
			rps, p50, p99, n, err := pxParseWrk(string(out))
			if err != nil {
				t.Fatalf("%s: %v\n%s", tg.name, err, out)
			}
			perReq, nbPerReq := cpu.Seconds()/float64(n)*1e6, nbCPU.Seconds()/float64(n)*1e6
			t.Logf("round %d %-15s %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  CPU/req: daemon %5.1f µs, fakenb %5.1f µs",
				round+1, tg.name, rps, p50, p99, perReq, nbPerReq)
			r := results[tg.name]
			if r == nil {
				r = &result{}
				results[tg.name] = r
			}
			r.rps, r.p50, r.p99 = append(r.rps, rps), append(r.p50, p50), append(r.p99, p99)
			r.cpu, r.nbCPU = append(r.cpu, perReq), append(r.nbCPU, nbPerReq)
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
		t.Logf("mean %-15s %9.0f req/s (%.2f of direct)  p50 %6.3f ms  p99 %6.3f ms  CPU/req: daemon %5.1f µs, fakenb %5.1f µs",
			tg.name, mean(r.rps), mean(r.rps)/mean(d.rps), mean(r.p50), mean(r.p99), mean(r.cpu), mean(r.nbCPU))
	}
}

// pxCPUTime is the user and system CPU time the process pid has used.
func pxCPUTime(t testing.TB, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command, which is in parentheses: utime and stime
	// are the 14th and 15th fields, in clock ticks (100 per second).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// pxContainerCPU is the CPU time a container has used, from its cgroup
// (v1 cgroupfs or v2 systemd layouts), or 0 if it cannot be read.
func pxContainerCPU(id string) time.Duration {
	if b, err := os.ReadFile("/sys/fs/cgroup/cpuacct/docker/" + id + "/cpuacct.usage"); err == nil {
		ns, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return time.Duration(ns)
	}
	for _, p := range []string{"/sys/fs/cgroup/system.slice/docker-" + id + ".scope/cpu.stat", "/sys/fs/cgroup/docker/" + id + "/cpu.stat"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
				us, _ := strconv.ParseInt(v, 10, 64)
				return time.Duration(us) * time.Microsecond
			}
		}
	}
	return 0
}

var (
	pxWrkCount   = regexp.MustCompile(`([0-9]+) requests in`)
	pxWrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	pxWrkLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// pxParseWrk reads requests/s, the 50th and 99th latency percentiles (ms)
// and the number of requests from wrk's --latency output, and fails on
// any non-2xx answer or socket error.
func pxParseWrk(out string) (rps, p50, p99 float64, n int64, err error) {
	if strings.Contains(out, "Non-2xx") || strings.Contains(out, "Socket errors") {
		return 0, 0, 0, 0, fmt.Errorf("wrk saw errors")
	}
	m, c := pxWrkRPS.FindStringSubmatch(out), pxWrkCount.FindStringSubmatch(out)
	if m == nil || c == nil {
		return 0, 0, 0, 0, fmt.Errorf("no Requests/sec or request count")
	}
	rps, _ = strconv.ParseFloat(m[1], 64)
	n, _ = strconv.ParseInt(c[1], 10, 64)
	scale := map[string]float64{"us": 1e-3, "ms": 1, "s": 1e3}
	for _, m := range pxWrkLatency.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		if m[1] == "50" {
			p50 = v * scale[m[3]]
		} else {
			p99 = v * scale[m[3]]
		}
	}
	if p99 == 0 || n == 0 {
		return 0, 0, 0, 0, fmt.Errorf("no 99%% latency or no requests")
	}
	return rps, p50, p99, n, nil
}
