package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// wrkScript makes wrk print its summary as one JSON line after a marker.
// Latencies are in microseconds.
const wrkScript = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\"requests\":%d,\"durationUs\":%d,\"bytes\":%d,\"connectErrors\":%d,\"readErrors\":%d,\"writeErrors\":%d,\"statusErrors\":%d,\"timeouts\":%d,\"p50Us\":%f,\"p90Us\":%f,\"p99Us\":%f,\"maxUs\":%f,\"meanUs\":%f}\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
`

// wrkResult is what one wrk run measured.
type wrkResult struct {
	Requests      int64   `json:"requests"`
	DurationUs    int64   `json:"durationUs"`
	Bytes         int64   `json:"bytes"`
	ConnectErrors int64   `json:"connectErrors"`
	ReadErrors    int64   `json:"readErrors"`
	WriteErrors   int64   `json:"writeErrors"`
	StatusErrors  int64   `json:"statusErrors"`
	Timeouts      int64   `json:"timeouts"`
	P50Us         float64 `json:"p50Us"`
	P90Us         float64 `json:"p90Us"`
	P99Us         float64 `json:"p99Us"`
	MaxUs         float64 `json:"maxUs"`
	MeanUs        float64 `json:"meanUs"`
}

// RPS is requests per second.
func (r wrkResult) RPS() float64 {
	if r.DurationUs == 0 {
		return 0
	}
	return float64(r.Requests) / (float64(r.DurationUs) / 1e6)
}

func (r wrkResult) errors() int64 {
	return r.ConnectErrors + r.ReadErrors + r.WriteErrors + r.StatusErrors + r.Timeouts
}

// runWrk runs wrk against url with conns keep-alive connections for d,
// pinned to the client CPUs with one thread per CPU there.
func runWrk(ctx context.Context, e *env, url string, headers []string, conns int, d time.Duration) (wrkResult, error) {
	script := filepath.Join(e.tmp, "report.lua")
	if _, err := os.Stat(script); err != nil {
		if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
			return wrkResult{}, err
		}
	}
	threads := cpuCount(e.m.ClientCPUs)
	if threads == 0 {
		threads = e.m.CPUs
	}
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", max(1, int(d.Seconds()))), "--timeout", "10s", "-s", script}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	args = append(args, url)
	cmd := command(e.m.ClientCPUs, "wrk", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	waitErr, err := e.reg.start(cmd)
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w", err)
	}
	select {
	case err := <-waitErr:
		if err != nil {
			return wrkResult{}, fmt.Errorf("wrk %s: %w: %s", url, err, errb.String())
		}
	case <-ctx.Done():
		stopProcess(cmd, waitErr, time.Second)
		return wrkResult{}, ctx.Err()
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if js, ok := strings.CutPrefix(sc.Text(), "WRKJSON "); ok {
			var r wrkResult
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				return r, fmt.Errorf("wrk output %q: %w", js, err)
			}
			if r.Requests == 0 || r.errors()*100 > r.Requests {
				return r, fmt.Errorf("wrk %s: %d requests, %d errors (%+v)", url, r.Requests, r.errors(), r)
			}
			return r, nil
		}
	}
	return wrkResult{}, fmt.Errorf("wrk printed no summary: %s %s", out.String(), errb.String())
}

// cpuCount counts the CPUs of a taskset list such as "0", "2-3" or "0,2".
func cpuCount(list string) int {
	n := 0
	for _, part := range strings.Split(list, ",") {
		if part == "" {
			continue
		}
		a, b, isRange := strings.Cut(part, "-")
		if !isRange {
			n++
			continue
		}
		lo, err1 := strconv.Atoi(a)
		hi, err2 := strconv.Atoi(b)
		if err1 == nil && err2 == nil && hi >= lo {
			n += hi - lo + 1
		}
	}
	return n
}
