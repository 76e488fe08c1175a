package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon"
)

// adminToken is the admin token of the benchmark daemons.
const adminToken = "bench-admin-token"

// benchNetwork is the launch network of the benchmark daemons (and of the
// raw-engine baselines), apart from the tests' one.
const benchNetwork = "nbpool-bench"

// nbd is an nbpool daemon run from the built binary as its own process,
// optionally pinned to CPUs with taskset.
type nbd struct {
	cfg     daemon.Config
	cfgPath string
	logPath string
	cpus    string
	bin     string
	reg     *registry

	cmd    *exec.Cmd
	done   chan error
	URL    string
	Client *api.Client
	// Ready is how long the last start took from exec to READY=1.
	Ready time.Duration
}

// baseConfig returns a daemon config of a fresh instance ("bench-" and
// random hex), a free port and a store in storeDir, with the given
// bindings.
func baseConfig(storeDir string, capacity int, bindings ...api.Binding) (daemon.Config, error) {
	addr, err := freeAddr()
	if err != nil {
		return daemon.Config{}, err
	}
	cfg := daemon.Defaults()
	cfg.Instance = "bench-" + randomHex(4)
	cfg.Listen = addr
	cfg.Store = filepath.Join(storeDir, cfg.Instance+".db")
	cfg.Docker.Network = benchNetwork
	cfg.AdminToken = adminToken
	cfg.Capacity = capacity
	cfg.ShutdownGrace = api.Duration(5 * time.Second)
	cfg.Log.Format = "json"
	cfg.Bindings = bindings
	cfg.DefaultBinding = bindings[0].Name
	return cfg, cfg.Validate()
}

// startDaemon writes a baseConfig of capacity and bindings and starts
// `nbpool serve --config FILE` (under taskset when cpus is set), waiting
// for READY=1 on a notify socket. Its containers are removed by the
// registry's cleanup.
func startDaemon(ctx context.Context, e *env, cpus string, capacity int, bindings ...api.Binding) (*nbd, error) {
	cfg, err := baseConfig(e.storeDir, capacity, bindings...)
	if err != nil {
		return nil, err
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	d := &nbd{cfg: cfg, cpus: cpus, bin: e.nbpool, reg: e.reg,
		cfgPath: filepath.Join(e.tmp, cfg.Instance+".yaml"),
		logPath: filepath.Join(e.tmp, cfg.Instance+".log")}
	if err := os.WriteFile(d.cfgPath, b, 0o600); err != nil {
		return nil, err
	}
	e.reg.instance(cfg.Instance)
	return d, d.start(ctx)
}

// start runs the process and waits for READY=1.
func (d *nbd) start(ctx context.Context) error {
	sock := filepath.Join(filepath.Dir(d.cfgPath), d.cfg.Instance+".notify")
	_ = os.Remove(sock)
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer os.Remove(sock)
	defer notify.Close()
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor

	d.cmd = command(d.cpus, d.bin, "serve", "--config", d.cfgPath)
	d.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "NBPOOL_LOG_FORMAT=json")
	d.cmd.Stderr = logf
	d.cmd.Stdout = logf
	begin := time.Now()
	if d.done, err = d.reg.start(d.cmd); err != nil {
		return fmt.Errorf("start nbpool: %w", err)
	}

	ready := make(chan error, 1)
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				ready <- err
				return
			}
			if strings.Contains(string(buf[:n]), "READY=1") {
				ready <- nil
				return
			}
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			return fmt.Errorf("notify socket: %w", err)
		}
	case err := <-d.done:
		d.done <- err
		return fmt.Errorf("nbpool exited before READY=1: %v (log: %s)", err, d.logPath)
	case <-time.After(120 * time.Second):
		return fmt.Errorf("nbpool sent no READY=1 within 120s (log: %s)", d.logPath)
	case <-ctx.Done():
		return ctx.Err()
	}
	d.Ready = time.Since(begin)
	d.URL = "http://" + d.cfg.Listen
	d.Client = api.NewClient(d.URL, adminToken)
	return nil
}

// PID is the daemon's process id (taskset execs it, so it is the same).
func (d *nbd) PID() int { return d.cmd.Process.Pid }

// Mem is the daemon's resident memory.
func (d *nbd) Mem() (procMem, error) { return readProcMem(d.PID()) }

// stop sends SIGTERM and waits (SIGKILL after 20 s). Containers stay
// (onShutdown keep): they are the registry's to remove.
func (d *nbd) stop() {
	if d.cmd == nil || d.cmd.ProcessState != nil {
		return
	}
	stopProcess(d.cmd, d.done, 20*time.Second)
}

// restart stops the daemon and starts it again on the same store.
func (d *nbd) restart(ctx context.Context) error {
	d.stop()
	return d.start(ctx)
}

// lastReconcile reads the "took" of the last "reconciled" log line.
func (d *nbd) lastReconcile() (time.Duration, error) {
	f, err := os.Open(d.logPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var took time.Duration
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(`"reconciled"`)) {
			continue
		}
		var rec struct {
			Message string  `json:"message"`
			Took    float64 `json:"took"` // zerolog: milliseconds
		}
		if json.Unmarshal(line, &rec) == nil && rec.Message == "reconciled" {
			took = time.Duration(rec.Took * float64(time.Millisecond))
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("no reconciled line in %s", d.logPath)
	}
	return took, sc.Err()
}

// waitPool waits until the binding's pool has want available containers and
// none pending.
func (d *nbd) waitPool(ctx context.Context, binding string, want int, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var p api.Pool
	var err error
	for {
		p, err = d.Client.GetPool(ctx, binding)
		if err == nil && p.Available == want && p.Pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pool %s: want %d available, have %+v (err %v)", binding, want, p, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// setPool sets a pool's minimum.
func (d *nbd) setPool(ctx context.Context, binding string, min int) error {
	_, err := d.Client.SetPool(ctx, binding, api.PoolUpdate{MinPool: &min})
	return err
}

// claim launches on binding through the admin API and waits until the
// launch is claimed (a cold start answers 202 first).
func (d *nbd) claim(ctx context.Context, binding string) (api.Launch, error) {
	l, status, err := d.Client.Spawn(ctx, binding, api.SpawnRequest{})
	if err != nil {
		return l, err
	}
	if status == 201 {
		return l, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		got, err := d.Client.Launch(ctx, binding, l.ID)
		switch {
		case err != nil:
			return got, err
		case got.State == api.StateClaimed:
			return got, nil
		case got.State == api.StateEnded:
			return got, fmt.Errorf("launch %s ended: %s %s", got.ID, got.EndReason, got.Error)
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
