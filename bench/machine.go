package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// machine describes where a run happened.
type machine struct {
	CPUs     int        `json:"cpus"`
	CPUModel string     `json:"cpuModel"`
	MemoryMB int64      `json:"memoryMB"`
	Kernel   string     `json:"kernel"`
	Docker   string     `json:"docker"`
	Go       string     `json:"go"`
	Load     [3]float64 `json:"loadAtStart"` // 1, 5 and 15 minute averages
	// ClientCPUs and ServerCPUs are the taskset lists of the load generators
	// and of the proxies in the proxy and websocket scenarios ("" = none).
	ClientCPUs string `json:"clientCpus"`
	ServerCPUs string `json:"serverCpus"`
}

// describeMachine reads /proc and asks docker for its version.
func describeMachine(ctx context.Context) machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	m.Load = loadAvg()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "MemTotal:") {
				fmt.Sscan(strings.Fields(line)[1], &kb)
			}
		}
		m.MemoryMB = kb >> 10
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").Output(); err == nil {
		m.Docker = strings.TrimSpace(string(out))
	}
	return m
}

// loadAvg reads the load averages.
func loadAvg() [3]float64 {
	var l [3]float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(b), &l[0], &l[1], &l[2])
	}
	return l
}

// String is the machine line under the table.
func (m machine) String() string {
	return fmt.Sprintf("%d × %s, %d MiB, Linux %s, Docker %s, %s; load average at start %.2f / %.2f / %.2f",
		m.CPUs, m.CPUModel, m.MemoryMB, m.Kernel, m.Docker, m.Go, m.Load[0], m.Load[1], m.Load[2])
}

// short is the machine column of the table: CPUs and the load at start.
func (m machine) short() string {
	return fmt.Sprintf("%d CPU, load %.2f", m.CPUs, m.Load[0])
}

// pinned is the machine column of the pinned scenarios.
func (m machine) pinned(client string) string {
	if m.ClientCPUs == "" {
		return m.short() + ", not pinned"
	}
	return fmt.Sprintf("%s; %s cpu %s, proxy cpu %s", m.short(), client, m.ClientCPUs, m.ServerCPUs)
}

// splitCPUs gives the load generator the upper half of the CPUs and the
// proxy under test the lower half; none on a single CPU.
func splitCPUs(n int) (client, server string) {
	if n < 2 {
		return "", ""
	}
	half := n / 2
	rng := func(a, b int) string {
		if a == b {
			return fmt.Sprint(a)
		}
		return fmt.Sprintf("%d-%d", a, b)
	}
	return rng(half, n-1), rng(0, half-1)
}
