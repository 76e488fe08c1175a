package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon/daemontest"
	"github.com/nbpool/nbpool/engine"
)

// get fetches a path of the daemon and returns status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Done when 1: a pool of 5 fills; 20 sequential spawns each open through the
// proxy; the pool is back to 5.
func TestPoolFillsAndSpawnsOpen(t *testing.T) {
	d := daemontest.Start(t, daemontest.Config(t, 5))
	d.WaitPool(t, "fake", 5, 30*time.Second)
	ctx := context.Background()
	seen := map[string]bool{}
	for i := range 20 {
		var out api.TmpnbSpawn
		status, err := d.Client.Do(ctx, "tmpnb.spawn", nil, nil, struct{}{}, &out)
		if err != nil || status != http.StatusOK {
			t.Fatalf("spawn %d: status %d, %v", i, status, err)
		}
		if !strings.HasPrefix(out.URL, "/user/") || !strings.Contains(out.URL, "/tree?token=") {
			t.Fatalf("spawn %d: url %q is not /user/<id>/tree?token=…", i, out.URL)
		}
		id := strings.Split(out.URL, "/")[2]
		if seen[id] {
			t.Fatalf("spawn %d: launch %s handed out twice", i, id)
		}
		seen[id] = true
		token := out.URL[strings.Index(out.URL, "token=")+len("token="):]
		code, body := get(t, d.URL+"/user/"+id+"/api/status?token="+token)
		if code != http.StatusOK || !strings.Contains(body, `"started"`) {
			t.Fatalf("spawn %d: api/status through the proxy: %d %s", i, code, body)
		}
	}
	p := d.WaitPool(t, "fake", 5, 30*time.Second)
	if p.Running != 20 {
		t.Fatalf("want 20 running launches, have %+v", p)
	}
}

// Done when 2: 50 concurrent tmpnb spawns with pool min 10 and capacity 30:
// exactly 30 succeed, 20 get 429 {"status": "full"}, and the engine never
// holds more than 30 of the instance's containers.
func TestBurstNeverOverLaunches(t *testing.T) {
	cfg := daemontest.Config(t, 10)
	cfg.Capacity = 30
	d := daemontest.Start(t, cfg)
	d.WaitPool(t, "fake", 10, 30*time.Second)

	var maxSeen atomic.Int64
	stop := make(chan struct{})
	watcher := make(chan struct{})
	go func() {
		defer close(watcher)
		for {
			n := int64(len(daemontest.Containers(t, cfg.Instance)))
			if n > maxSeen.Load() {
				maxSeen.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	var ok, full, other atomic.Int64
	var wg sync.WaitGroup
	urls := make(chan string, 50)
	for range 50 {
		wg.Go(func() {
			resp, err := http.Post(d.URL+"/api/spawn/", "application/json", strings.NewReader(`{"image_name": "ignored"}`))
			if err != nil {
				other.Add(1)
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			switch resp.StatusCode {
			case http.StatusOK:
				var s api.TmpnbSpawn
				if json.Unmarshal(body, &s) == nil && s.URL != "" {
					ok.Add(1)
					urls <- s.URL
					return
				}
			case http.StatusTooManyRequests:
				// tmpnb's body, and a Retry-After a client can honour.
				if strings.TrimSpace(string(body)) == `{"status":"full"}` && resp.Header.Get("Retry-After") != "" {
					full.Add(1)
					return
				}
			}
			t.Errorf("unexpected answer %d %s", resp.StatusCode, body)
			other.Add(1)
		})
	}
	wg.Wait()
	time.Sleep(200 * time.Millisecond) // let the refill loop try to go over
	close(stop)
	<-watcher
	close(urls)
	if ok.Load() != 30 || full.Load() != 20 || other.Load() != 0 {
		t.Fatalf("want 30 ok and 20 full, have %d ok, %d full, %d other", ok.Load(), full.Load(), other.Load())
	}
	if m := maxSeen.Load(); m > 30 {
		t.Fatalf("the engine held %d managed containers, more than the capacity 30", m)
	}
	for u := range urls {
		if code, _ := get(t, d.URL+u); code != http.StatusOK {
			t.Fatalf("launch %s does not open: %d", u, code)
		}
	}
}

// Done when 3: resizing at runtime grows and shrinks the pool at once, and
// claimed launches are untouched.
func TestPoolResizeAtRuntime(t *testing.T) {
	d := daemontest.Start(t, daemontest.Config(t, 2))
	ctx := context.Background()
	d.WaitPool(t, "fake", 2, 30*time.Second)
	l, status, err := d.Client.Spawn(ctx, "fake", api.SpawnRequest{})
	if err != nil || status != http.StatusCreated {
		t.Fatalf("spawn: %d %v", status, err)
	}
	for _, size := range []int{8, 2, 0, 3} {
		p, err := d.Client.SetPool(ctx, "fake", api.PoolUpdate{MinPool: &size})
		if err != nil || p.MinPool != size {
			t.Fatalf("set pool %d: %+v %v", size, p, err)
		}
		p = d.WaitPool(t, "fake", size, 30*time.Second)
		if p.Running != 1 {
			t.Fatalf("after resize to %d the claimed launch is gone: %+v", size, p)
		}
		waitContainers(t, d.Config.Instance, size+1)
		if code, _ := get(t, d.URL+l.URL); code != http.StatusOK {
			t.Fatalf("after resize to %d the claimed launch does not open: %d", size, code)
		}
	}
}

// Done when 4: deleting a binding removes its available containers; a second
// daemon instance on the same engine never touches the first one's.
func TestDeleteBindingAndInstancesApart(t *testing.T) {
	a := daemontest.Start(t, daemontest.Config(t, 3))
	b := daemontest.Start(t, daemontest.Config(t, 2))
	a.WaitPool(t, "fake", 3, 30*time.Second)
	b.WaitPool(t, "fake", 2, 30*time.Second)
	ctx := context.Background()
	la, _, err := a.Client.Spawn(ctx, "fake", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	a.WaitPool(t, "fake", 3, 30*time.Second) // refilled
	aContainers := ids(daemontest.Containers(t, a.Config.Instance))

	// b deletes its binding: its containers go, a's stay.
	if err := b.Client.DeleteBinding(ctx, "fake", false); err != nil {
		t.Fatalf("delete binding of b: %v", err)
	}
	waitContainers(t, b.Config.Instance, 0)
	if got := ids(daemontest.Containers(t, a.Config.Instance)); !sameSet(got, aContainers) {
		t.Fatalf("a's containers changed when b deleted its binding: %v → %v", aContainers, got)
	}

	// a refuses while a launch is claimed, then deletes with force.
	err = a.Client.DeleteBinding(ctx, "fake", false)
	if !api.ErrBindingInUse.Is(err) {
		t.Fatalf("delete with a claimed launch: want bindingInUse, have %v", err)
	}
	if code, _ := get(t, a.URL+la.URL); code != http.StatusOK {
		t.Fatalf("the claimed launch stopped opening after a refused delete: %d", code)
	}
	if err := a.Client.DeleteBinding(ctx, "fake", true); err != nil {
		t.Fatalf("delete with force: %v", err)
	}
	waitContainers(t, a.Config.Instance, 0)
	if code, _ := get(t, a.URL+la.URL); code != http.StatusNotFound {
		t.Fatalf("the ended launch still answers %d", code)
	}
}

// waitContainers waits until the instance has n containers (removals are
// asynchronous to the pool's own counts).
func waitContainers(t *testing.T, instance string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		have := len(daemontest.Containers(t, instance))
		if have == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s has %d containers, want %d", instance, have, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ids(cs []engine.Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}
