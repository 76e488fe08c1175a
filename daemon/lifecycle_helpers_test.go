package daemon_test

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon"
	"github.com/nbpool/nbpool/daemon/daemontest"
)

// Helpers of the lifecycle tests (culling, events, crash, restart,
// shutdown). They take an *api.Client so that they serve in-process daemons
// and daemon processes alike.

// startProcess runs the daemon as a process (daemontest.StartProcess) and
// removes the instance's containers at the end of the test, once the
// process has been killed (cleanups run last registered first), so that
// it cannot refill the pool behind the removal.
func startProcess(t *testing.T, cfg daemon.Config) *daemontest.Process {
	t.Helper()
	t.Cleanup(func() { daemontest.RemoveInstance(t, cfg.Instance) })
	return daemontest.StartProcess(t, cfg)
}

// open GETs base+path with a client of its own (no connection reuse across
// daemon restarts) and returns the status.
func open(ctx context.Context, base, path string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// statusPath is a launch's notebook-server status through the proxy,
// authenticated with its token.
func statusPath(l api.Launch) string {
	return l.Location + "api/status?token=" + l.Token
}

// wantOpens fails the test unless the launch opens through the proxy at
// base, both at its own URL and at its api/status.
func wantOpens(t *testing.T, base string, l api.Launch) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, path := range []string{l.URL, statusPath(l)} {
		if code, err := open(ctx, base, path); err != nil || code != http.StatusOK {
			t.Errorf("launch %s does not open at %s: %d %v", l.ID, path, code, err)
		}
	}
}

// claimWarm launches on binding and wants a warm claim (201).
func claimWarm(t *testing.T, c *api.Client, binding string) api.Launch {
	t.Helper()
	l, status, err := c.Spawn(context.Background(), binding, api.SpawnRequest{})
	if err != nil || status != http.StatusCreated {
		t.Fatalf("spawn on %s: want 201, have %d %v", binding, status, err)
	}
	return l
}

// waitEnded polls a launch until it has ended and returns its record.
func waitEnded(t *testing.T, c *api.Client, binding, id string, within time.Duration) api.Launch {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		l, err := c.Launch(context.Background(), binding, id)
		if err == nil && !l.Live() {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("launch %s did not end within %s: %+v %v", id, within, l, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitPool waits until a binding's pool has want available containers and
// none pending.
func waitPool(t *testing.T, c *api.Client, binding string, want int, within time.Duration) api.Pool {
	t.Helper()
	deadline := time.Now().Add(within)
	var p api.Pool
	var err error
	for time.Now().Before(deadline) {
		p, err = c.GetPool(context.Background(), binding)
		if err == nil && p.Available == want && p.Pending == 0 {
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("pool %s: want %d available, have %+v (err %v)", binding, want, p, err)
	return p
}

// liveLaunches lists a binding's live launches by id (admin client).
func liveLaunches(t *testing.T, c *api.Client, binding string) map[string]api.Launch {
	t.Helper()
	list, err := c.ListLaunches(context.Background(), binding, "live")
	if err != nil {
		t.Fatalf("list live launches of %s: %v", binding, err)
	}
	out := make(map[string]api.Launch, len(list.Items))
	for _, l := range list.Items {
		out[l.ID] = l
	}
	return out
}

// dockerKill kills a container with the docker CLI, as an operator would.
func dockerKill(t *testing.T, id string) {
	t.Helper()
	if out, err := exec.Command("docker", "kill", id).CombinedOutput(); err != nil {
		t.Fatalf("docker kill %s: %v\n%s", id, err, out)
	}
}

// busy keeps launches active through the proxy, a request every period,
// until the returned stop is called.
func busy(base string, period time.Duration, ls ...api.Launch) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() {
			t := time.NewTicker(period)
			defer t.Stop()
			for {
				_, _ = open(ctx, base, statusPath(l))
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}
