package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// profiler is a perf record of a process over one load run.
type profiler struct {
	cmd  *exec.Cmd
	data string
	out  string
}

// startPerf records pid with call graphs for d (perf stops by itself),
// into e.perfDir/<name>.perf.data. Failures are logged, not fatal: the
// profile is a developer's aid.
func startPerf(e *env, pid int, name string, d time.Duration) *profiler {
	if err := os.MkdirAll(e.perfDir, 0o755); err != nil {
		logf("perf: %v", err)
		return nil
	}
	base := filepath.Join(e.perfDir, strings.NewReplacer(" ", "-", "/", "-").Replace(name))
	p := &profiler{data: base + ".perf.data", out: base + ".txt"}
	p.cmd = exec.Command("perf", "record", "-F", "999", "-g", "-p", strconv.Itoa(pid), "-o", p.data,
		"--", "sleep", fmt.Sprint(max(1, int(d.Seconds()))))
	if err := p.cmd.Start(); err != nil {
		logf("perf: %v", err)
		return nil
	}
	e.reg.track(p.cmd)
	return p
}

// finish waits for the record and writes a flat report (self time by
// symbol) next to it.
func (p *profiler) finish() {
	if p == nil {
		return
	}
	_ = p.cmd.Wait()
	out, err := exec.Command("perf", "report", "-i", p.data, "--stdio", "--no-children", "--sort", "symbol",
		"--percent-limit", "0.5", "-g", "none").Output()
	if err != nil {
		logf("perf report: %v", err)
		return
	}
	if err := os.WriteFile(p.out, out, 0o644); err != nil {
		logf("perf: %v", err)
		return
	}
	logf("perf: profile of the daemon in %s", p.out)
}
