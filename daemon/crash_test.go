package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon/daemontest"
	"github.com/nbpool/nbpool/engine"
)

// answer is what one spawn of a burst got back.
type answer struct {
	tmpnb  bool
	status int
	launch api.Launch // ID, URL and Token (Location too for binders)
	err    error
}

// claimed reports whether the answer handed out a launch to open (tmpnb's
// 200, the binders' 201).
func (a answer) claimed() bool {
	return a.err == nil && (a.status == http.StatusOK || a.status == http.StatusCreated) && a.launch.URL != ""
}

// Done when 3: the daemon process is SIGKILLed at a random moment of a
// 30-spawn burst (tmpnb and binders mixed), 20 times; after each restart no
// managed container lacks a live launch, no live launch lacks its container,
// no launch has two, every launch claimed before the kill opens through the
// proxy with its old URL and token, and the pool is back to its min.
// NBPOOL_CRASH_SEED replays the kill moments of a run.
func TestCrashDuringBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: 20 daemon restarts")
	}
	const rounds, burstSize, minPool = 20, 30, 5
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("NBPOOL_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (NBPOOL_CRASH_SEED replays it)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	cfg := daemontest.Config(t, minPool)
	cfg.Capacity = 40
	p := startProcess(t, cfg)
	waitPool(t, p.Client, "fake", minPool, 30*time.Second)

	start := time.Now()
	for round := range rounds {
		// Kill anywhere from before the first answer to after the burst
		// would be over (a full burst takes about 1.5-3s on 2 cores).
		killAfter := time.Duration(rng.Int64N(int64(3 * time.Second)))
		answers, before := burstAndKill(t, p, burstSize, killAfter)
		restartStart := time.Now()
		p.Restart(t)
		restart := time.Since(restartStart)

		pool := waitPool(t, p.Client, "fake", minPool, 60*time.Second)
		live := checkNoOrphans(t, p.Client, cfg.Instance)
		opened := 0
		for _, a := range answers {
			switch {
			case a.claimed():
				if l, ok := live[a.launch.ID]; !ok || l.State != api.StateClaimed {
					t.Errorf("round %d: launch %s answered %d before the kill is not claimed after the restart: %+v",
						round, a.launch.ID, a.status, l)
					continue
				}
				wantOpens(t, p.URL, a.launch)
				opened++
			case a.err == nil && a.status == http.StatusAccepted:
				// A cold start was under way: claimed by now, or ended
				// (interrupted); either way not live without a container,
				// which checkNoOrphans saw.
				if l, ok := live[a.launch.ID]; ok {
					wantOpens(t, p.URL, l)
				}
			}
		}
		rep := reconciledLine(p.Log())
		var ok, cold, failed int
		for _, a := range answers {
			switch {
			case a.claimed():
				ok++
			case a.err == nil && a.status == http.StatusAccepted:
				cold++
			default:
				failed++
			}
		}
		t.Logf("round %2d: kill after %4dms (%2d answers before it: %2d claimed, %2d accepted, %2d cut); "+
			"restart %4dms, %s; %d claimed reopen, pool %d/%d, %d live",
			round, killAfter.Milliseconds(), before, ok, cold, failed, restart.Milliseconds(), rep,
			opened, pool.Available, pool.MinPool, len(live))
		if t.Failed() {
			t.Fatalf("round %d failed; log of the restarted daemon:\n%s", round, p.Log())
		}
		stopClaimed(t, p.Client, live)
		waitPool(t, p.Client, "fake", minPool, 30*time.Second)
	}
	t.Logf("%d rounds in %s", rounds, time.Since(start).Round(time.Second))
	if err := p.Term(30 * time.Second); err != nil {
		t.Errorf("SIGTERM after the rounds: %v\n%s", err, p.Log())
	}
}

// burstAndKill sends n spawns at once, half of them tmpnb's, SIGKILLs the
// daemon killAfter later and returns every answer, with how many had come
// before the kill.
func burstAndKill(t *testing.T, p *daemontest.Process, n int, killAfter time.Duration) ([]answer, int) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}, Timeout: 60 * time.Second}
	defer client.CloseIdleConnections()
	answers := make([]answer, n)
	var mu sync.Mutex
	done := 0
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			a := spawnOnce(client, p.URL, i%2 == 0)
			mu.Lock()
			answers[i] = a
			done++
			mu.Unlock()
		})
	}
	time.Sleep(killAfter)
	mu.Lock()
	before := done
	mu.Unlock()
	p.Kill()
	wg.Wait()
	return answers, before
}

// spawnOnce sends one spawn: tmpnb's POST /api/spawn/ or POST
// /api/binders/fake.
func spawnOnce(c *http.Client, base string, tmpnb bool) answer {
	a := answer{tmpnb: tmpnb}
	path := "/api/binders/fake"
	if tmpnb {
		path = "/api/spawn/"
	}
	resp, err := c.Post(base+path, "application/json", strings.NewReader("{}"))
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		a.err = err // cut mid-answer: not an answer
		return a
	}
	a.status = resp.StatusCode
	if tmpnb {
		var s api.TmpnbSpawn
		if a.status == http.StatusOK {
			if a.err = json.Unmarshal(body, &s); a.err == nil {
				a.launch, a.err = fromURL(s.URL)
			}
		}
		return a
	}
	if a.status == http.StatusCreated || a.status == http.StatusAccepted {
		a.err = json.Unmarshal(body, &a.launch)
	}
	return a
}

// fromURL reads id and token from a launch URL /user/<id>/tree?token=….
func fromURL(u string) (api.Launch, error) {
	parts := strings.Split(u, "/")
	i := strings.Index(u, "token=")
	if len(parts) < 4 || parts[1] != "user" || i < 0 {
		return api.Launch{}, fmt.Errorf("launch url %q is not /user/<id>/…?token=…", u)
	}
	id := parts[2]
	return api.Launch{ID: id, URL: u, Token: u[i+len("token="):], Location: "/user/" + id + "/"}, nil
}

// checkNoOrphans checks, on a settled pool, that every managed container of
// the instance has a live launch and runs, every live launch has its
// container, and no launch has two. It returns the live launches. A
// container without a launch gets 3 s to go: the engine may finish creating
// it for the killed daemon after the restart's list, and the event loop
// removes it then.
func checkNoOrphans(t *testing.T, c *api.Client, instance string) map[string]api.Launch {
	t.Helper()
	live := liveLaunches(t, c, "fake")
	var byLaunch map[string][]engine.Container
	for deadline := time.Now().Add(3 * time.Second); ; {
		byLaunch = map[string][]engine.Container{}
		orphans := 0
		for _, ct := range daemontest.Containers(t, instance) {
			byLaunch[ct.Launch] = append(byLaunch[ct.Launch], ct)
			if _, ok := live[ct.Launch]; !ok {
				orphans++
			}
		}
		if orphans == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for id, cs := range byLaunch {
		l, ok := live[id]
		switch {
		case len(cs) > 1:
			t.Errorf("launch %s has %d containers", id, len(cs))
		case !ok:
			t.Errorf("container %s (%s) has no live launch", cs[0].Name, cs[0].Status)
		case !cs[0].Running:
			t.Errorf("container %s of live launch %s does not run (%s)", cs[0].Name, id, cs[0].Status)
		case l.ContainerID != cs[0].ID:
			t.Errorf("launch %s records container %.12s, its container is %.12s", id, l.ContainerID, cs[0].ID)
		}
	}
	for id, l := range live {
		if len(byLaunch[id]) == 0 {
			t.Errorf("live launch %s (%s) has no container", id, l.State)
		}
	}
	return live
}

// stopClaimed ends the claimed launches, 8 at a time.
func stopClaimed(t *testing.T, c *api.Client, live map[string]api.Launch) {
	t.Helper()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, l := range live {
		if l.State != api.StateClaimed {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := c.StopLaunch(context.Background(), l.Binding, l.ID); err != nil {
				t.Errorf("stop %s: %v", l.ID, err)
			}
		})
	}
	wg.Wait()
}

// reconciledLine summarizes the daemon's "reconciled" log line.
func reconciledLine(log string) string {
	for _, line := range strings.Split(log, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["message"] != "reconciled" {
			continue
		}
		late := strings.Count(log, "removed a container no live launch owns")
		return fmt.Sprintf("reconcile %v claimed %v available %v ended %v removed in %.0fms, %d late containers removed",
			m["claimed"], m["available"], m["ended"], m["removed"], m["took"], late)
	}
	return "no reconciled line"
}
