package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/nbpool/nbpool/engine"
)

// registry remembers everything a run started — child processes and daemon
// instances — so that cleanup removes it at the end, on failure and on
// interrupt. Safe for concurrent use.
type registry struct {
	mu        sync.Mutex
	procs     []*exec.Cmd
	instances []string
	network   string
}

// track registers a started child process.
func (r *registry) track(cmd *exec.Cmd) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.procs = append(r.procs, cmd)
}

// start starts cmd and tracks it. The returned channel (buffered) receives
// the result of its Wait.
func (r *registry) start(cmd *exec.Cmd) (chan error, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r.track(cmd)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return done, nil
}

// instance registers an instance name whose containers cleanup removes.
func (r *registry) instance(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.instances = append(r.instances, name)
}

// cleanup kills the child processes still running (by their own pids) and
// removes the containers of every registered instance.
func (r *registry) cleanup(ctx context.Context) error {
	r.mu.Lock()
	procs, instances := r.procs, r.instances
	r.procs, r.instances = nil, nil
	r.mu.Unlock()
	for _, cmd := range procs {
		if cmd.Process != nil && cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	var errs []error
	for _, inst := range instances {
		n, err := removeInstance(ctx, inst, r.network)
		if err != nil {
			errs = append(errs, err)
		}
		if n > 0 {
			logf("cleanup: removed %d containers of instance %s", n, inst)
		}
	}
	return errors.Join(errs...)
}

// removeInstance removes every container of an instance and says how many.
func removeInstance(ctx context.Context, instance, network string) (int, error) {
	eng, err := engine.New(ctx, engine.Options{Instance: instance, Network: network, Log: zerolog.Nop()})
	if err != nil {
		return 0, fmt.Errorf("engine for %s: %w", instance, err)
	}
	defer eng.Close()
	cs, err := eng.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("list containers of %s: %w", instance, err)
	}
	return len(cs), eachOf8(cs, func(c engine.Container) error {
		if err := eng.Remove(ctx, c.ID); err != nil {
			return fmt.Errorf("remove %s: %w", c.Name, err)
		}
		return nil
	})
}

// eachOf8 calls f on every item, 8 at a time, and joins their errors.
func eachOf8[T any](items []T, f func(T) error) error {
	sem := make(chan struct{}, 8)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(it); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// command returns a command for name and args, pinned with taskset to cpus
// when cpus is not empty. The child gets SIGKILL when the harness dies.
func command(cpus, name string, args ...string) *exec.Cmd {
	if cpus != "" {
		args = append([]string{"-c", cpus, name}, args...)
		name = "taskset"
	}
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// stopProcess sends SIGTERM, waits up to d, then SIGKILL. It returns once
// the process is gone. wait is the channel the process's Wait result
// arrives on.
func stopProcess(cmd *exec.Cmd, wait <-chan error, d time.Duration) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-wait:
		return
	case <-time.After(d):
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-wait
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitHTTP polls url until it answers want (any status when want is 0).
func waitHTTP(ctx context.Context, url string, header http.Header, want int, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			if want == 0 || res.StatusCode == want {
				return nil
			}
			err = fmt.Errorf("status %d", res.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not answering within %s: %w", url, within, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// randomHex returns 2n random hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// procMem is a process's resident memory in bytes: VmRSS and its anonymous
// and file-backed parts (the store's mmap counts as file-backed).
type procMem struct {
	RSS, Anon, File int64
}

// readProcMem reads /proc/<pid>/status.
func readProcMem(pid int) (procMem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMem{}, err
	}
	var m procMem
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		var dst *int64
		switch f[0] {
		case "VmRSS:":
			dst = &m.RSS
		case "RssAnon:":
			dst = &m.Anon
		case "RssFile:":
			dst = &m.File
		default:
			continue
		}
		var kb int64
		if _, err := fmt.Sscan(f[1], &kb); err != nil {
			return m, err
		}
		*dst = kb << 10
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return m, nil
}

// logf prints a progress line to stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
