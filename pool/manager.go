package pool

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/engine"
	"github.com/nbpool/nbpool/proxy"
)

// Sentinel errors of the pool.
var (
	// ErrFull means no container can be handed out or started: the binding's
	// max or the daemon's capacity is reached.
	ErrFull = errors.New("no container free")
	// ErrNoBinding means the binding has no pool (it does not exist).
	ErrNoBinding = errors.New("no such binding")
	// ErrNotFound means no live launch has that id.
	ErrNotFound = errors.New("no such launch")
	// ErrInUse means a binding still has claimed launches.
	ErrInUse = errors.New("binding has claimed launches")
	// ErrClosed means the manager no longer takes spawns (shutting down).
	ErrClosed = errors.New("shutting down")
	// ErrEnded means a launch ended before it could be claimed.
	ErrEnded = errors.New("launch ended")
	// ErrBackoff means the binding's recent launches failed and it waits
	// before trying again.
	ErrBackoff = errors.New("binding is backing off after failures")
)

// Engine is what the pool needs from the Docker engine.
type Engine interface {
	EnsureImage(ctx context.Context, ref string) error
	Run(ctx context.Context, s engine.Spec) (engine.Container, error)
	Remove(ctx context.Context, id string) error
}

// Store is what the pool needs from the store.
type Store interface {
	PutLaunch(ctx context.Context, l api.Launch) error
	UpdateLaunch(ctx context.Context, id string, fn func(*api.Launch) error) (api.Launch, error)
}

// Router is what the pool needs from the proxy.
type Router interface {
	Add(r proxy.Route)
	Remove(id string)
	// Touch sets a route's last activity (restored at restart).
	Touch(id string, t time.Time)
}

// Options configure a Manager.
type Options struct {
	Engine   Engine
	Store    Store
	Router   Router
	Log      zerolog.Logger
	Instance string // names containers: nbpool-<instance>-<launch id>
	// Capacity bounds the live launches of all bindings together.
	Capacity int
	// Concurrency bounds container creations in flight; default 4.
	Concurrency int
	// Backoff is how long a binding waits after a failed container before
	// the next; it doubles with each failure in a row, up to 5 minutes.
	// Default 1s.
	Backoff time.Duration
	// Observer, if set, is told about spawns, failures and ends (metrics).
	Observer Observer
}

// Observer receives the pool's events, for metrics. Calls are made without
// the manager's lock held and must not block.
type Observer interface {
	Claimed(binding string, cold bool, wait time.Duration)
	Created(binding string, took time.Duration, err error)
	Ended(binding, reason string)
}

// Manager owns the pools and every live launch. It is safe for concurrent
// use; Run must be running for pools to fill.
type Manager struct {
	opts  Options
	log   zerolog.Logger
	probe *http.Client
	sem   chan struct{}
	kick  chan struct{}

	mu       sync.Mutex
	ctx      context.Context // creations live under it
	pools    map[string]*pool
	launches map[string]*launch
	closed   bool
	engErr   error          // set while the engine does not answer
	wg       sync.WaitGroup // creation goroutines
}

// pool is one binding's set of launches. Guarded by Manager.mu.
type pool struct {
	binding   api.Binding
	size      api.PoolSpec // effective size: runtime override or the binding's
	template  string       // templateHash(binding)
	available []*launch    // FIFO: oldest first
	warming   []*launch
	claimed   int
	deleted   bool

	failures     int
	lastCause    error // the latest failure in a row; nil after a success
	backoffUntil time.Time
	imageReady   bool
}

func (p *pool) live() int { return len(p.available) + len(p.warming) + p.claimed }

// fail counts a failed creation and backs the binding off, first for
// first.
func (p *pool) fail(cause error, first time.Duration) {
	p.failures++
	p.lastCause = cause
	p.backoffUntil = time.Now().Add(backoff(p.failures, first, isImageError(cause)))
	if isImageError(cause) {
		p.imageReady = false
	}
}

// launch is a live launch in memory. Its fields are guarded by Manager.mu.
type launch struct {
	// rec is the public view. Its State says claimed only once the claim is
	// stored and the route registered.
	rec api.Launch
	// where is where the launch is counted: warming, available or claimed.
	where   api.State
	pool    *pool
	ended   bool
	cause   error              // why its creation failed
	cancel  context.CancelFunc // cancels its creation
	changed chan struct{}      // closed and replaced on every change
}

// notify wakes the watchers of l. Callers hold Manager.mu.
func (l *launch) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// New returns a Manager. Containers are created under ctx: when it ends,
// creations in flight are cancelled (and cleaned up). Call Run to start
// filling pools.
func New(ctx context.Context, opts Options) *Manager {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	return &Manager{
		opts:     opts,
		log:      opts.Log.With().Str("component", "pool").Logger(),
		probe:    newProbeClient(),
		sem:      make(chan struct{}, opts.Concurrency),
		kick:     make(chan struct{}, 1),
		ctx:      ctx,
		pools:    map[string]*pool{},
		launches: map[string]*launch{},
	}
}

// Kick wakes the refill loop. It never blocks.
func (m *Manager) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Run fills and trims the pools until ctx ends, then stops taking spawns,
// cancels the creations in flight and waits for them. It must be called
// once, after the bindings are set.
func (m *Manager) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		m.fill(ctx)
		select {
		case <-ctx.Done():
			m.mu.Lock()
			m.closed = true
			var cancels []context.CancelFunc
			for _, ln := range m.launches {
				if ln.where == api.StateWarming && ln.cancel != nil {
					cancels = append(cancels, ln.cancel)
				}
			}
			m.mu.Unlock()
			for _, c := range cancels {
				c()
			}
			m.wg.Wait()
			return nil
		case <-m.kick:
			m.settle(ctx)
		case <-tick.C:
		}
	}
}

// settle waits until kicks stop coming for a moment (at most half a
// second): a burst of claims is answered before its refill starts, so the
// claims do not compete with container creation for the CPU.
func (m *Manager) settle(ctx context.Context) {
	deadline := time.After(500 * time.Millisecond)
	for {
		select {
		case <-m.kick:
		case <-time.After(50 * time.Millisecond):
			return
		case <-deadline:
			return
		case <-ctx.Done():
			return
		}
	}
}

// SetEngineError records that the engine does not answer (nil: it does
// again). Meanwhile cold starts fail with the error and pools do not refill;
// warm containers are still handed out.
func (m *Manager) SetEngineError(err error) {
	m.mu.Lock()
	m.engErr = err
	m.mu.Unlock()
	if err == nil {
		m.Kick()
	}
}

// Close stops taking spawns; pools no longer refill. Live launches are kept.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
}

// SetBinding adds or replaces a binding's pool definition. size is the
// effective pool size (a runtime override, or b.Pool). Available launches
// made from an older definition, and unreserved ones being made from it, are
// replaced; claimed and reserved ones keep going.
func (m *Manager) SetBinding(ctx context.Context, b api.Binding, size api.PoolSpec) {
	m.mu.Lock()
	p := m.pools[b.Name]
	tmpl := templateHash(b)
	var stale []*launch
	if p == nil {
		p = &pool{}
		m.pools[b.Name] = p
	} else if p.template != tmpl {
		p.imageReady = p.imageReady && p.binding.Image == b.Image
		p.failures, p.backoffUntil, p.lastCause = 0, time.Time{}, nil
		// What the old definition made or is making goes, but for the
		// launches a visitor has reserved: the pool holds only launches of
		// its current definition.
		stale = append(stale, p.available...)
		for _, l := range p.warming {
			if !l.rec.Reserved {
				stale = append(stale, l)
			}
		}
		for _, l := range stale {
			m.unlinkLocked(l)
		}
	}
	p.binding, p.size, p.template = b, size, tmpl
	m.mu.Unlock()
	for _, l := range stale {
		m.finish(ctx, l, api.EndUpdated, "")
	}
	m.Kick()
}

// templateHash identifies what a definition makes containers from: the
// binding without its pool, cull and redirect settings, which do not change
// containers.
func templateHash(b api.Binding) string {
	b.Pool, b.Cull, b.Redirect = api.PoolSpec{}, api.Cull{}, ""
	b.Created, b.Updated = time.Time{}, time.Time{}
	j, _ := json.Marshal(b)
	sum := sha256.Sum256(j)
	return hex.EncodeToString(sum[:8])
}

// Resize sets a binding's effective pool size; the pool grows or shrinks at
// once.
func (m *Manager) Resize(name string, size api.PoolSpec) error {
	m.mu.Lock()
	p := m.pools[name]
	if p == nil || p.deleted {
		m.mu.Unlock()
		return fmt.Errorf("resize %s: %w", name, ErrNoBinding)
	}
	p.size = size
	m.mu.Unlock()
	m.Kick()
	return nil
}

// Binding returns the current definition of a binding.
func (m *Manager) Binding(name string) (api.Binding, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pools[name]
	if p == nil || p.deleted {
		return api.Binding{}, false
	}
	return p.binding, true
}

// Capacity returns the daemon's capacity.
func (m *Manager) Capacity() int { return m.opts.Capacity }

// Pool reports one binding's pool.
func (m *Manager) Pool(name string) (api.Pool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pools[name]
	if p == nil || p.deleted {
		return api.Pool{}, fmt.Errorf("pool %s: %w", name, ErrNoBinding)
	}
	return p.report(name), nil
}

// Pools reports every pool, sorted by binding name.
func (m *Manager) Pools() []api.Pool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]api.Pool, 0, len(m.pools))
	for name, p := range m.pools {
		if !p.deleted {
			out = append(out, p.report(name))
		}
	}
	slices.SortFunc(out, func(a, b api.Pool) int { return strings.Compare(a.Binding, b.Binding) })
	return out
}

func (p *pool) report(name string) api.Pool {
	r := api.Pool{
		Binding: name, Running: p.claimed, Available: len(p.available), Pending: len(p.warming),
		MinPool: p.size.Min, MaxPool: p.size.Max, Failures: p.failures, BackoffUntil: p.backoffUntil,
	}
	if p.lastCause != nil {
		r.LastError = p.lastCause.Error()
	}
	return r
}

// Live counts live launches in all pools.
func (m *Manager) Live() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.liveLocked()
}

// liveLocked counts the launches of all pools: what the capacity bounds.
func (m *Manager) liveLocked() int {
	n := 0
	for _, p := range m.pools {
		n += p.live()
	}
	return n
}
