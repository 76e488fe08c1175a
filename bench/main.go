// Command bench is nbpool's benchmark harness: it starts its own daemons
// from the built binary on the test images, measures each scenario side by
// side with its baseline in the same run, and writes results/latest.md and
// results/latest.json. See README.md for what is measured and how.
//
//	go build -o bin/nbpool-bench ./bench
//	bin/nbpool-bench -nbpool bin/nbpool [-quick] [-only spawn,proxy,refill,memory]
//
// The same binary also runs the helpers the harness starts pinned to other
// CPUs: "bench httputil-proxy" (the plain httputil baseline) and "bench
// wsload" (the websocket load generator).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon"
)

// env is what every scenario gets: the mode, paths, the registry of
// things to clean up and the machine.
type env struct {
	quick   bool
	nbpool  string // the nbpool binary
	self    string // this binary, for the pinned helpers
	tmp     string
	reg     *registry
	m       machine
	fake    api.Binding // testdata/fakenb.yaml's binding, no CPU limit
	jupyter api.Binding // testdata/jupyter.yaml's binding
	details map[string]any
	// perfDir, when set, receives a perf profile of the daemon during its
	// first run of each proxy load (a developer's aid, -perf).
	perfDir string
	// loadDuration, when set, replaces the duration of each proxy and
	// websocket load run (-load-duration).
	loadDuration time.Duration
	// storeDir is where the daemons keep their stores (-store-dir).
	storeDir string
	// pinContainers pins the proxy scenario's containers to the proxy CPUs
	// (-pin-containers).
	pinContainers bool
}

// pick returns full or quick by mode.
func pick[T any](e *env, full, quick T) T {
	if e.quick {
		return quick
	}
	return full
}

// scenario is a group of measurements sharing a setup.
type scenario struct {
	name string
	run  func(context.Context, *env) ([]row, error)
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "httputil-proxy":
			exit(runHTTPUtilProxy(os.Args[2:]))
		case "wsload":
			exit(runWSLoad(os.Args[2:]))
		}
	}
	exit(run())
}

func exit(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func run() error {
	quick := flag.Bool("quick", false, "short mode (under 2 minutes): fewer claims, shorter loads")
	bin := flag.String("nbpool", "bin/nbpool", "the nbpool binary (make build)")
	out := flag.String("out", "bench/results", "directory for latest.md and latest.json")
	root := flag.String("root", ".", "repository root (for testdata/*.yaml)")
	only := flag.String("only", "", "comma-separated scenario groups to run: spawn,proxy,refill,memory (default all)")
	pin := flag.Bool("pin", true, "pin load generators and proxies to different CPUs with taskset")
	perf := flag.String("perf", "", "write perf profiles of the daemon under the proxy loads into this directory\n(needs perf and an nbpool binary with symbols: go build -o bin/nbpool-sym .)")
	loadDur := flag.Duration("load-duration", 0, "override the duration of each proxy and websocket load run")
	storeDir := flag.String("store-dir", "", "directory for the daemons' stores (default: a temp dir)")
	pinContainers := flag.Bool("pin-containers", false, "in the proxy scenario, pin the notebook containers to the proxy CPUs too")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	e, err := newEnv(ctx, *quick, *bin, *root, *pin)
	if err != nil {
		return err
	}
	defer os.RemoveAll(e.tmp)
	e.perfDir, e.loadDuration, e.storeDir, e.pinContainers = *perf, *loadDur, *storeDir, *pinContainers
	if e.storeDir == "" {
		e.storeDir = e.tmp
	}
	started := time.Now()
	mode := pick(e, "full", "quick")
	logf("%s run; %s", mode, e.m.String())
	if e.m.Load[0] >= 1 {
		logf("warning: the 1-minute load average is %.2f; figures will be noisy", e.m.Load[0])
	}

	all := []scenario{
		{"spawn", runSpawn},
		{"proxy", runProxy},
		{"refill", runRefill},
		{"memory", runMemory},
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			want[s] = true
		}
	}
	rep := &report{Mode: mode, Started: started, Commit: gitCommit(ctx), Machine: e.m, Details: e.details}
	var failed []string
	for _, s := range all {
		if len(want) > 0 && !want[s.name] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		t0 := time.Now()
		logf("scenario %s", s.name)
		rows, err := s.run(ctx, e)
		rep.Rows = append(rep.Rows, rows...)
		if err != nil {
			failed = append(failed, s.name)
			logf("scenario %s failed: %v", s.name, err)
			if len(rows) == 0 {
				rep.Rows = append(rep.Rows, failedRow(s.name, err, e.m.short()))
			}
		}
		// Each group removes its own containers; this catches what a
		// failure left behind before the next group measures anything.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		if err := e.reg.cleanup(cctx); err != nil {
			logf("cleanup after %s: %v", s.name, err)
		}
		cancel()
		logf("scenario %s took %s", s.name, time.Since(t0).Round(time.Second))
	}
	rep.Took = time.Since(started).Round(time.Second).String()
	if ctx.Err() != nil {
		return errors.New("interrupted; containers removed, results not written")
	}
	md, err := rep.write(*out)
	if err != nil {
		return err
	}
	fmt.Println(md)
	for _, m := range rep.missed() {
		logf("target missed: %s", m)
	}
	logf("wrote %s and %s", filepath.Join(*out, "latest.md"), filepath.Join(*out, "latest.json"))
	if len(failed) > 0 {
		return fmt.Errorf("scenarios failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// newEnv checks the tools, reads the test bindings and describes the
// machine.
func newEnv(ctx context.Context, quick bool, bin, root string, pin bool) (*env, error) {
	e := &env{quick: quick, reg: &registry{network: benchNetwork}, details: map[string]any{}}
	var err error
	if e.nbpool, err = filepath.Abs(bin); err != nil {
		return nil, err
	}
	if _, err := os.Stat(e.nbpool); err != nil {
		return nil, fmt.Errorf("nbpool binary: %w (run make build)", err)
	}
	if e.self, err = os.Executable(); err != nil {
		return nil, err
	}
	if e.tmp, err = os.MkdirTemp("", "nbpool-bench-"); err != nil {
		return nil, err
	}
	fake, err := testBinding(filepath.Join(root, "testdata", "fakenb.yaml"))
	if err != nil {
		return nil, err
	}
	// No CPU quota: the direct path and the proxies are then limited by the
	// machine, not by half a CPU for the backend.
	fake.Limits.CPUs = 0
	fake.Pool = api.PoolSpec{}
	e.fake = fake
	jup, err := testBinding(filepath.Join(root, "testdata", "jupyter.yaml"))
	if err != nil {
		return nil, err
	}
	jup.Pool = api.PoolSpec{}
	e.jupyter = jup
	e.m = describeMachine(ctx)
	if pin {
		if _, err := exec.LookPath("taskset"); err == nil {
			e.m.ClientCPUs, e.m.ServerCPUs = splitCPUs(runtime.NumCPU())
		}
	}
	return e, nil
}

// testBinding reads the first binding of a test config.
func testBinding(path string) (api.Binding, error) {
	cfg, err := daemon.LoadConfig(path, func(string) string { return "" })
	if err != nil {
		return api.Binding{}, err
	}
	if len(cfg.Bindings) == 0 {
		return api.Binding{}, fmt.Errorf("%s declares no binding", path)
	}
	b := cfg.Bindings[0]
	b.Normalize()
	return b, nil
}

// gitCommit is the short commit of the working tree, "-dirty" when changed
// outside bench/results (which the previous run wrote).
func gitCommit(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	commit := strings.TrimSpace(string(out))
	changed, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--", ".", ":(exclude)bench/results").Output()
	if err == nil && len(bytes.TrimSpace(changed)) > 0 {
		commit += "-dirty"
	}
	return commit
}
