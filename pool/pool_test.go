package pool

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/engine"
	"github.com/nbpool/nbpool/proxy"
	"github.com/nbpool/nbpool/store"
)

// fakeEngine keeps containers in memory; every container answers readiness
// probes through one httptest server unless its launch is marked dead. It is
// for the pool's own logic; the real engine is tested in daemon/ and e2e/.
type fakeEngine struct {
	srv       *httptest.Server
	delay     time.Duration // per Run
	mu        sync.Mutex
	live      map[string]engine.Container // by id
	dead      map[string]bool             // launch ids whose server fails
	noImage   bool
	runs      atomic.Int64
	maxLive   atomic.Int64
	removed   atomic.Int64
	imageAsks atomic.Int64
}

func newFakeEngine(t *testing.T) *fakeEngine {
	f := &fakeEngine{live: map[string]engine.Container{}, dead: map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// /user/<id>/api/status
		parts := strings.Split(r.URL.Path, "/")
		f.mu.Lock()
		dead := f.dead["*"] || (len(parts) > 2 && f.dead[parts[2]])
		f.mu.Unlock()
		if dead {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"started": "now"}`)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeEngine) EnsureImage(ctx context.Context, ref string) error {
	f.imageAsks.Add(1)
	if f.noImage {
		return fmt.Errorf("%w: no registry", engine.ErrImageUnavailable)
	}
	return nil
}

func (f *fakeEngine) Run(ctx context.Context, s engine.Spec) (engine.Container, error) {
	f.runs.Add(1)
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return engine.Container{}, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.live {
		if c.Name == s.Name {
			return engine.Container{}, engine.ErrConflict
		}
	}
	c := engine.Container{ID: "c-" + s.Launch, Name: s.Name, Binding: s.Binding, Launch: s.Launch, Running: true,
		Address: strings.TrimPrefix(f.srv.URL, "http://")}
	f.live[c.ID] = c
	if n := int64(len(f.live)); n > f.maxLive.Load() {
		f.maxLive.Store(n)
	}
	return c, nil
}

func (f *fakeEngine) Remove(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.live[id]; ok {
		f.removed.Add(1)
	}
	delete(f.live, id)
	return nil
}

func (f *fakeEngine) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.live)
}

func (f *fakeEngine) containers() []engine.Container {
	f.mu.Lock()
	defer f.mu.Unlock()
	var cs []engine.Container
	for _, c := range f.live {
		cs = append(cs, c)
	}
	return cs
}

type fakeRouter struct {
	mu     sync.Mutex
	routes map[string]proxy.Route
}

func (r *fakeRouter) Add(rt proxy.Route)      { r.mu.Lock(); r.routes[rt.ID] = rt; r.mu.Unlock() }
func (r *fakeRouter) Remove(id string)        { r.mu.Lock(); delete(r.routes, id); r.mu.Unlock() }
func (r *fakeRouter) Touch(string, time.Time) {}
func (r *fakeRouter) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.routes[id]
	return ok
}

type harness struct {
	m      *Manager
	eng    *fakeEngine
	st     *store.Store
	routes *fakeRouter
	cancel context.CancelFunc
	done   chan struct{}
}

func binding(name string, minPool, maxPool int) api.Binding {
	b := api.Binding{Name: name, Image: "img", Pool: api.PoolSpec{Min: minPool, Max: maxPool},
		Readiness: api.Readiness{Timeout: api.Duration(2 * time.Second)}}
	b.Normalize()
	return b
}

func newHarness(t *testing.T, capacity int, bs ...api.Binding) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "s.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{eng: newFakeEngine(t), st: st, routes: &fakeRouter{routes: map[string]proxy.Route{}}, cancel: cancel, done: make(chan struct{})}
	h.m = New(ctx, Options{Engine: h.eng, Store: st, Router: h.routes, Log: zerolog.Nop(), Instance: "t", Capacity: capacity})
	for _, b := range bs {
		h.m.SetBinding(ctx, b, b.Pool)
	}
	go func() { defer close(h.done); _ = h.m.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
		h.st.Close()
	}
}

// newWarmHarness is newHarness with one binding whose pool is full.
func newWarmHarness(t *testing.T, capacity int, b api.Binding) *harness {
	t.Helper()
	h := newHarness(t, capacity, b)
	h.waitAvailable(t, b.Name, b.Pool.Min)
	return h
}

// claimWarm claims a warm launch of the binding; the test fails otherwise.
func (h *harness) claimWarm(t *testing.T, name string) api.Launch {
	t.Helper()
	l, cold, err := h.m.Claim(context.Background(), name, "")
	if err != nil || cold {
		t.Fatalf("claim on %s: cold=%v %v", name, cold, err)
	}
	return l
}

func (h *harness) waitAvailable(t *testing.T, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, _ := h.m.Pool(name)
		if p.Available == n && p.Pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool %s: want %d available, have %+v", name, n, p)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClaimIsFIFOAndPersisted(t *testing.T) {
	h := newWarmHarness(t, 10, binding("a", 3, 0))
	ctx := context.Background()
	// The queue is in the order containers became ready.
	ls := h.m.List("a")
	slices.SortFunc(ls, func(a, b api.Launch) int { return a.Ready.Compare(b.Ready) })
	var order []string
	for _, l := range ls {
		order = append(order, l.ID)
	}
	l, cold, err := h.m.Claim(ctx, "a", "notebooks/x.ipynb")
	if err != nil || cold {
		t.Fatalf("claim: cold=%v %v", cold, err)
	}
	if l.ID != order[0] {
		t.Fatalf("want the oldest available launch %s, have %s", order[0], l.ID)
	}
	if !strings.HasSuffix(strings.Split(l.URL, "?")[0], "/notebooks/x.ipynb") || !h.routes.has(l.ID) {
		t.Fatalf("claim: url %q, route %v", l.URL, h.routes.has(l.ID))
	}
	rec, err := h.st.GetLaunch(ctx, l.ID)
	if err != nil || rec.State != api.StateClaimed || rec.Claimed.IsZero() {
		t.Fatalf("store has %+v %v", rec, err)
	}
	h.waitAvailable(t, "a", 3) // refilled
}

// Concurrent claims never exceed the capacity, and every container made is
// handed out (a reserved cold start is not lost to a later claimant).
func TestConcurrentClaimsRespectCapacity(t *testing.T) {
	h := newHarness(t, 12, binding("a", 4, 0))
	h.eng.delay = 30 * time.Millisecond
	h.waitAvailable(t, "a", 4)
	var ok, full atomic.Int64
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			l, cold, err := h.m.Claim(context.Background(), "a", "")
			switch {
			case errors.Is(err, ErrFull):
				full.Add(1)
				return
			case err != nil:
				t.Error(err)
				return
			}
			if cold {
				if _, err := h.m.Wait(context.Background(), l.ID); err != nil {
					t.Error(err)
					return
				}
			}
			ok.Add(1)
		})
	}
	wg.Wait()
	if ok.Load() != 12 || full.Load() != 28 {
		t.Fatalf("want 12 claims and 28 full, have %d and %d", ok.Load(), full.Load())
	}
	if m := h.eng.maxLive.Load(); m > 12 {
		t.Fatalf("%d containers existed at once, capacity 12", m)
	}
}

func TestMaxPerBinding(t *testing.T) {
	h := newWarmHarness(t, 10, binding("a", 1, 2))
	ctx := context.Background()
	h.claimWarm(t, "a")
	h.waitAvailable(t, "a", 1)
	h.claimWarm(t, "a")
	// Two claimed: max reached, no refill, no cold start.
	time.Sleep(50 * time.Millisecond)
	if _, _, err := h.m.Claim(ctx, "a", ""); !errors.Is(err, ErrFull) {
		t.Fatalf("want ErrFull at the binding's max, have %v", err)
	}
	if p, _ := h.m.Pool("a"); p.Available+p.Pending != 0 {
		t.Fatalf("refilled beyond max: %+v", p)
	}
}

func TestResizeGrowsAndShrinks(t *testing.T) {
	h := newWarmHarness(t, 20, binding("a", 2, 0))
	for _, n := range []int{7, 1, 0, 4} {
		if err := h.m.Resize("a", api.PoolSpec{Min: n}); err != nil {
			t.Fatal(err)
		}
		h.waitAvailable(t, "a", n)
		waitFor(t, func() bool { return h.eng.count() == n })
	}
}

// A failing binding backs off instead of hot-looping, and an image that
// cannot be had fails claims at once with an ImageError.
func TestFailuresBackOff(t *testing.T) {
	h := newHarness(t, 10)
	h.eng.noImage = true
	h.m.SetBinding(context.Background(), binding("a", 2, 0), api.PoolSpec{Min: 2})
	time.Sleep(1500 * time.Millisecond)
	if n := h.eng.imageAsks.Load(); n > 3 {
		t.Fatalf("the image was asked for %d times in 1.5s: hot loop", n)
	}
	p, _ := h.m.Pool("a")
	if p.Failures == 0 || p.BackoffUntil.IsZero() || !strings.Contains(p.LastError, "no registry") {
		t.Fatalf("the pool does not report the failure: %+v", p)
	}
	_, _, err := h.m.Claim(context.Background(), "a", "")
	var ie *ImageError
	if !errors.As(err, &ie) {
		t.Fatalf("want an ImageError during backoff, have %v", err)
	}
}

// A container that never answers its probe is removed and its reserved
// claimant told why.
func TestUnreadyContainerFailsTheWaiter(t *testing.T) {
	b := binding("a", 0, 0)
	b.Readiness.Timeout = api.Duration(300 * time.Millisecond)
	h := newHarness(t, 10, b)
	ctx := context.Background()
	h.eng.mu.Lock()
	h.eng.dead["*"] = true // no server answers
	h.eng.mu.Unlock()
	l, cold, err := h.m.Claim(ctx, "a", "")
	if err != nil || !cold {
		t.Fatalf("cold claim: %v %v", cold, err)
	}
	_, err = h.m.Wait(ctx, l.ID)
	if !errors.Is(err, ErrEnded) || !strings.Contains(err.Error(), "not ready within") {
		t.Fatalf("want the readiness failure, have %v", err)
	}
	waitFor(t, func() bool { return h.eng.count() == 0 })
	rec, _ := h.st.GetLaunch(ctx, l.ID)
	if rec.State != api.StateEnded || rec.EndReason != api.EndFailed {
		t.Fatalf("store: %+v", rec)
	}
}

func TestRemoveBindingRefusesWhileClaimed(t *testing.T) {
	h := newWarmHarness(t, 10, binding("a", 2, 0))
	ctx := context.Background()
	l := h.claimWarm(t, "a")
	var inUse *InUseError
	if err := h.m.RemoveBinding(ctx, "a", false); !errors.As(err, &inUse) || inUse.Claimed != 1 {
		t.Fatalf("want InUseError with 1 claimed, have %v", err)
	}
	if err := h.m.RemoveBinding(ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	if h.routes.has(l.ID) {
		t.Fatal("the claimed launch's route survived a forced delete")
	}
	// A creation in flight is cancelled and cleans up after itself.
	waitFor(t, func() bool { return h.eng.count() == 0 })
	if _, _, err := h.m.Claim(ctx, "a", ""); !errors.Is(err, ErrNoBinding) {
		t.Fatalf("claim on a deleted binding: %v", err)
	}
}

// Reconcile after a restart: claimed launches come back with their routes,
// available ones are re-probed, vanished ones end as lost, interrupted
// creations and strangers are removed.
func TestReconcileMatrix(t *testing.T) {
	h := newWarmHarness(t, 20, binding("a", 2, 0))
	ctx := context.Background()
	claimed := h.claimWarm(t, "a")
	gone := h.claimWarm(t, "a")
	h.waitAvailable(t, "a", 2)
	h.stop() // the daemon "crashes": records and containers stay

	// A creation interrupted by the crash, and a stranger container.
	st, err := store.Open(ctx, h.st.Path(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	warm := api.Launch{ID: "interrupted0000000001", Binding: "a", State: api.StateWarming, Token: "t", Created: time.Now()}
	if err := st.PutLaunch(ctx, warm); err != nil {
		t.Fatal(err)
	}
	eng := h.eng
	eng.mu.Lock()
	eng.live["c-interrupted"] = engine.Container{ID: "c-interrupted", Launch: warm.ID, Running: true}
	eng.live["c-stranger"] = engine.Container{ID: "c-stranger", Launch: "nobody", Running: true}
	delete(eng.live, "c-"+gone.ID)
	eng.mu.Unlock()

	routes := &fakeRouter{routes: map[string]proxy.Route{}}
	m := New(ctx, Options{Engine: eng, Store: st, Router: routes, Log: zerolog.Nop(), Instance: "t", Capacity: 20})
	b := binding("a", 2, 0)
	m.SetBinding(ctx, b, b.Pool)
	records, err := st.LiveLaunches(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := m.Reconcile(ctx, records, eng.containers())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Claimed != 1 || rep.Available != 2 || rep.Ended != 2 || rep.Removed != 2 {
		t.Fatalf("report %+v: want 1 claimed, 2 available, 2 ended (lost, interrupted), 2 removed", rep)
	}
	if !routes.has(claimed.ID) {
		t.Fatal("the claimed launch has no route after reconcile")
	}
	if l, ok := m.Get(claimed.ID); !ok || l.Token != claimed.Token || l.State != api.StateClaimed {
		t.Fatalf("claimed launch after reconcile: %+v", l)
	}
	for _, id := range []string{gone.ID, warm.ID} {
		rec, err := st.GetLaunch(ctx, id)
		if err != nil || rec.State != api.StateEnded {
			t.Fatalf("%s: %+v %v", id, rec, err)
		}
	}
	if rec, _ := st.GetLaunch(ctx, gone.ID); rec.EndReason != api.EndLost {
		t.Fatalf("vanished container: reason %q, want lost", rec.EndReason)
	}
	if p, _ := m.Pool("a"); p.Available != 2 || p.Running != 1 {
		t.Fatalf("pool after reconcile: %+v", p)
	}
	if c := eng.count(); c != 3 {
		t.Fatalf("want 3 containers (1 claimed, 2 available), have %d", c)
	}
}

// The culler ends idle and old claimed launches, never available ones.
func TestCuller(t *testing.T) {
	h := newWarmHarness(t, 10, binding("a", 2, 0))
	ctx := context.Background()
	idle := h.claimWarm(t, "a")
	busy := h.claimWarm(t, "a")
	now := time.Now()
	act := activity{busy.ID: now.Add(50 * time.Minute)}
	c := &Culler{Pools: h.m, Activity: act, Log: zerolog.Nop(),
		Defaults: api.Cull{IdleTimeout: api.Duration(time.Hour), MaxAge: api.Duration(4 * time.Hour)}}
	if n := c.Cull(ctx, now.Add(30*time.Minute)); n != 0 {
		t.Fatalf("culled %d before any timeout", n)
	}
	if n := c.Cull(ctx, now.Add(61*time.Minute)); n != 1 {
		t.Fatalf("want the idle launch culled, culled %d", n)
	}
	if _, ok := h.m.Get(idle.ID); ok {
		t.Fatal("the idle launch is still live")
	}
	if _, ok := h.m.Get(busy.ID); !ok {
		t.Fatal("the busy launch was culled")
	}
	if n := c.Cull(ctx, now.Add(5*time.Hour)); n != 1 {
		t.Fatalf("want the old launch culled by age, culled %d", n)
	}
	rec, _ := h.st.GetLaunch(ctx, busy.ID)
	if rec.EndReason != api.EndCulledAge {
		t.Fatalf("want culled-age, have %q", rec.EndReason)
	}
	h.waitAvailable(t, "a", 2) // available ones untouched and refilled
}

type activity map[string]time.Time

func (a activity) LastActivity(id string) (time.Time, bool) { t, ok := a[id]; return t, ok }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A container that exits before it is ready is a failure of its binding:
// counted and backed off, not restarted in a loop (the die event wins the
// race with the readiness probe every time).
func TestEarlyExitBacksOff(t *testing.T) {
	h := newHarness(t, 10)
	h.eng.mu.Lock()
	h.eng.dead["*"] = true
	h.eng.mu.Unlock()
	h.m.SetBinding(context.Background(), binding("a", 1, 0), api.PoolSpec{Min: 1})
	stop := time.After(time.Second)
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		case <-time.After(5 * time.Millisecond):
			for _, l := range h.m.List("a") {
				if l.ContainerID != "" {
					h.m.ContainerDied(context.Background(), l.ID, api.EndDied, 2) // what the event loop does
				}
			}
		}
	}
	if n := h.eng.runs.Load(); n > 3 {
		t.Fatalf("%d containers started in a second for a server that exits at once: hot loop", n)
	}
	p, _ := h.m.Pool("a")
	if p.Failures == 0 || !strings.Contains(p.LastError, "exited (code 2)") {
		t.Fatalf("the early exit is not reported as a failure: %+v", p)
	}
}

// A cold start keeps the path it was asked for.
func TestColdStartKeepsPath(t *testing.T) {
	h := newHarness(t, 10, binding("a", 0, 0))
	ctx := context.Background()
	l, cold, err := h.m.Claim(ctx, "a", "notebooks/intro.ipynb")
	if err != nil || !cold {
		t.Fatalf("cold claim: %v %v", cold, err)
	}
	got, err := h.m.Wait(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.URL, "/user/"+l.ID+"/notebooks/intro.ipynb?token=") {
		t.Fatalf("claimed URL %q lost the path", got.URL)
	}
	if !h.routes.has(l.ID) {
		t.Fatal("claimed without a route")
	}
}

// After a binding changes, a cold claim never gets a container of the old
// definition, and the old pooled ones are replaced.
func TestChangedBindingIsNotHandedOutOld(t *testing.T) {
	h := newHarness(t, 10, binding("a", 2, 0))
	h.eng.delay = 100 * time.Millisecond
	h.waitAvailable(t, "a", 2)
	ctx := context.Background()
	if _, _, err := h.m.Claim(ctx, "a", ""); err != nil { // starts a refill of the old definition
		t.Fatal(err)
	}
	nb := binding("a", 2, 0)
	nb.Image = "img2"
	h.m.SetBinding(ctx, nb, nb.Pool)
	want := templateHash(nb)
	for range 3 {
		l, cold, err := h.m.Claim(ctx, "a", "")
		if err != nil {
			t.Fatal(err)
		}
		if cold {
			if l, err = h.m.Wait(ctx, l.ID); err != nil {
				t.Fatal(err)
			}
		}
		if l.Template != want {
			t.Fatalf("handed out a container of the old definition: %+v", l)
		}
	}
}
