package daemon_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon/daemontest"
	"github.com/nbpool/nbpool/engine"
)

// Done when 4: a daemon with 100 managed containers (50 claimed, 50
// available) restarts, reconciles and serves: every claimed launch opens
// with its old URL and token, the available ones are back in the pool, and
// not one container was made or removed. The reconcile time is logged next
// to a bare list+inspect of the same containers, measured in the same run.
func TestRestartWith100Containers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 100 containers")
	}
	const claimed, available = 50, 50
	cfg := daemontest.Config(t, available)
	cfg.Capacity = claimed + available + 10
	cfg.SpawnConcurrency = 8
	p := startProcess(t, cfg)
	fill := time.Now()
	waitPool(t, p.Client, "fake", available, 3*time.Minute)
	launches := make([]api.Launch, claimed)
	for i := range launches {
		launches[i] = claimWarm(t, p.Client, "fake")
	}
	waitPool(t, p.Client, "fake", available, 3*time.Minute)
	t.Logf("%d containers up in %s", claimed+available, time.Since(fill).Round(100*time.Millisecond))
	before := ids(daemontest.Containers(t, cfg.Instance))
	if len(before) != claimed+available {
		t.Fatalf("want %d containers, have %d", claimed+available, len(before))
	}

	if err := p.Term(10 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.Log())
	}
	restart := time.Now()
	p.Restart(t)
	ready := time.Since(restart)
	took, line := reconcileTook(t, p.Log())
	pool := waitPool(t, p.Client, "fake", available, 30*time.Second)
	if pool.Running != claimed {
		t.Errorf("after the restart: want %d claimed, have %+v", claimed, pool)
	}
	var wg sync.WaitGroup
	for _, l := range launches {
		wg.Go(func() { wantOpens(t, p.URL, l) })
	}
	wg.Wait()
	serving := time.Since(restart)
	if after := ids(daemontest.Containers(t, cfg.Instance)); !sameSet(before, after) {
		t.Errorf("the restart changed the containers: %d before, %d after", len(before), len(after))
	}

	list, inspect := bareListInspect(t, cfg.Instance)
	t.Logf("restart with %d containers: READY=1 after %s; %s", len(before), ready.Round(time.Millisecond), line)
	t.Logf("reconcile took %s (list, store, adopt %d claimed, re-probe %d available); every claimed launch opened %s after the start",
		took.Round(time.Millisecond), claimed, available, serving.Round(time.Millisecond))
	t.Logf("bare engine list %s + %d sequential inspects %s = %s",
		list.Round(time.Millisecond), len(before), inspect.Round(time.Millisecond), (list + inspect).Round(time.Millisecond))
	if err := p.Term(30 * time.Second); err != nil {
		t.Errorf("SIGTERM: %v\n%s", err, p.Log())
	}
}

// reconcileTook reads the daemon's "reconciled" log line.
func reconcileTook(t *testing.T, log string) (time.Duration, string) {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["message"] != "reconciled" {
			continue
		}
		ms, _ := m["took"].(float64)
		return time.Duration(ms * float64(time.Millisecond)), line
	}
	t.Fatalf("no reconciled line in the log:\n%s", log)
	return 0, ""
}

// bareListInspect times engine.List of the instance's containers, then
// engine.Inspect of each, one after the other.
func bareListInspect(t *testing.T, instance string) (list, inspect time.Duration) {
	t.Helper()
	ctx := context.Background()
	eng, err := engine.New(ctx, engine.Options{Instance: instance, Network: daemontest.Network, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	start := time.Now()
	cs, err := eng.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list = time.Since(start)
	start = time.Now()
	for _, c := range cs {
		if _, err := eng.Inspect(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
	}
	return list, time.Since(start)
}
