// Package daemon is nbpool's composition root: it loads the configuration,
// wires the store, the engine, the pools, the proxy and the web server, and
// runs them until the context ends.
package daemon

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/engine"
	"github.com/nbpool/nbpool/pool"
	"github.com/nbpool/nbpool/proxy"
	"github.com/nbpool/nbpool/store"
	"github.com/nbpool/nbpool/web"
)

// Hooks lets the caller follow the daemon's life (systemd notification,
// tests). Nil fields are skipped.
type Hooks struct {
	// Ready is called once the listener is up and the reconcile is done.
	Ready func(addr net.Addr)
	// Stopping is called when shutdown begins.
	Stopping func()
}

// daemon holds the running parts.
type daemon struct {
	cfg   Config
	log   zerolog.Logger
	store *store.Store
	eng   *engine.Engine
	proxy *proxy.Proxy
	pools *pool.Manager
	stats *metrics

	lastFlush time.Time // guarded by being used from the flush loop, then after it
}

// Run runs nbpool until ctx ends, then shuts down gracefully: no new
// spawns, HTTP drained within the grace period, activity flushed, the store
// closed. Containers keep running unless onShutdown is "remove".
func Run(ctx context.Context, cfg Config, log zerolog.Logger, version api.Version, hooks Hooks) error {
	admin, err := cfg.AdminSecret()
	if err != nil {
		return err
	}
	d := &daemon{cfg: cfg, log: log, stats: newMetrics()}
	d.store, err = store.Open(ctx, cfg.Store, store.Options{Retention: cfg.History.Retention.D()})
	if err != nil {
		return fmt.Errorf("open store %s: %w", cfg.Store, err)
	}
	defer func() {
		if err := d.store.Close(); err != nil {
			log.Error().Err(err).Msg("close store")
		}
	}()
	d.eng, err = engine.New(ctx, engine.Options{Host: cfg.Docker.Host, Network: cfg.Docker.Network,
		Instance: cfg.Instance, Log: log, Timeout: cfg.Docker.Timeout.D()})
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer d.eng.Close()

	d.proxy = proxy.New(proxy.Options{
		Log:                 log,
		Ended:               d.endedBinding,
		Starting:            d.starting,
		NotFoundRedirect:    cfg.Proxy.NotFoundRedirect,
		TrustForwardedProto: cfg.Proxy.TrustForwardedProto,
		Unreachable:         func(id string) { d.recheck(ctx, id) },
	})
	d.pools = pool.New(ctx, pool.Options{Engine: d.eng, Store: d.store, Router: d.proxy, Log: log,
		Instance: cfg.Instance, Capacity: cfg.Capacity, Concurrency: cfg.SpawnConcurrency, Observer: d.stats})
	d.stats.watch(d.pools, d.proxy)
	if err := d.loadBindings(ctx); err != nil {
		return err
	}
	// Events are followed from before the reconcile lists the containers:
	// a container that a crashed predecessor's request creates after the
	// list is seen, and removed, however late it comes.
	evCtx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	evs, evErrs := d.eng.Events(evCtx)
	if err := d.start(ctx); err != nil {
		return err
	}

	srv, err := web.New(web.Options{Log: log, Pools: d.pools, Store: d.store, Proxy: d.proxy, Engine: d.eng,
		AdminToken: admin, SpawnAuth: cfg.SpawnAuth, DefaultBinding: cfg.DefaultBinding,
		CORSOrigin: cfg.CORS.AllowOrigin, Version: version, SpawnWait: 10 * time.Second,
		Metrics: d.stats.handler()})
	if err != nil {
		return err
	}
	httpSrv := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: httpErrorLog(log)}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (key listen): %w", cfg.Listen, err)
	}
	log.Info().Str("listen", ln.Addr().String()).Str("instance", cfg.Instance).Msg("nbpool serving")
	if hooks.Ready != nil {
		hooks.Ready(ln.Addr())
	}

	hs := newHTTPServer(httpSrv, ln, log.With().Str("component", "http").Logger())
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.pools.Run(gctx) })
	g.Go(func() error {
		if err := hs.serve(); err != nil {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error { d.flushLoop(gctx); return nil })
	g.Go(func() error { d.pruneLoop(gctx); return nil })
	context.AfterFunc(gctx, stopEvents)
	g.Go(func() error { d.watchEngine(gctx, evs, evErrs); return nil })
	culler := &pool.Culler{Pools: d.pools, Activity: d.proxy, Period: cfg.Cull.Period.D(),
		Defaults: api.Cull{IdleTimeout: cfg.Cull.IdleTimeout, MaxAge: cfg.Cull.MaxAge},
		Log:      log.With().Str("component", "culler").Logger()}
	g.Go(func() error { return culler.Run(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		if hooks.Stopping != nil {
			hooks.Stopping()
		}
		d.pools.Close()
		// A fresh context: the parent is already cancelled, and the drain
		// needs its grace period.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), cfg.ShutdownGrace.D())
		defer cancel()
		log.Info().Dur("grace", cfg.ShutdownGrace.D()).Msg("shutting down: draining HTTP")
		err := hs.drain(sctx)
		if n := d.proxy.CloseWebsockets(); n > 0 {
			log.Info().Int("websockets", n).Msg("closed proxied websockets")
		}
		return err
	})
	err = g.Wait()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownGrace.D())
	defer cancel()
	d.flush(fctx)
	if cfg.OnShutdown == "remove" {
		d.removeAll(fctx)
	}
	log.Info().Msg("nbpool stopped")
	return err
}

// loadBindings upserts the config's bindings into the store, then gives the
// pool manager every stored binding with its effective pool size.
func (d *daemon) loadBindings(ctx context.Context) error {
	for _, b := range d.cfg.Bindings {
		if _, _, err := d.store.PutBinding(ctx, b); err != nil {
			return fmt.Errorf("store binding %s: %w", b.Name, err)
		}
	}
	bs, err := d.store.ListBindings(ctx)
	if err != nil {
		return fmt.Errorf("load bindings: %w", err)
	}
	for _, b := range bs {
		size, ok, err := d.store.PoolSize(ctx, b.Name)
		if err != nil {
			return fmt.Errorf("load pool size of %s: %w", b.Name, err)
		}
		if !ok {
			size = b.Pool
		}
		d.pools.SetBinding(ctx, b, size)
	}
	return nil
}

// start makes sure the engine answers, creates the launch network and
// reconciles the store with the engine's containers.
func (d *daemon) start(ctx context.Context) error {
	if err := d.eng.Ping(ctx); err != nil {
		return fmt.Errorf("%w (set DOCKER_HOST or docker.host, and check that dockerd runs)", err)
	}
	if err := d.eng.EnsureNetwork(ctx); err != nil {
		return fmt.Errorf("launch network %s: %w", d.cfg.Docker.Network, err)
	}
	return d.reconcile(ctx)
}

// reconcile matches the live launch records with this instance's
// containers.
func (d *daemon) reconcile(ctx context.Context) error {
	start := time.Now()
	records, err := d.store.LiveLaunches(ctx)
	if err != nil {
		return fmt.Errorf("load launches: %w", err)
	}
	containers, err := d.eng.List(ctx)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	rep, err := d.pools.Reconcile(ctx, records, containers)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	d.log.Info().Int("claimed", rep.Claimed).Int("available", rep.Available).Int("ended", rep.Ended).
		Int("removed", rep.Removed).Dur("took", time.Since(start)).Msg("reconciled")
	return nil
}

// endedBinding tells the proxy which binding a launch with no route was of,
// for the relaunch link of the "session ended" page. The proxy asks only for
// ids it has no route for, so a record still live is one being ended.
func (d *daemon) endedBinding(ctx context.Context, id string) (string, bool) {
	l, err := d.store.GetLaunch(ctx, id)
	if err != nil {
		return "", false
	}
	return l.Binding, true
}

// starting tells the proxy whether a launch without a route is starting.
func (d *daemon) starting(_ context.Context, id string) bool {
	l, ok := d.pools.Get(id)
	return ok && l.State == api.StateWarming && l.Reserved
}

// recheck looks at the container of a launch whose server did not answer
// through the proxy, and ends the launch if the container is gone or dead.
func (d *daemon) recheck(ctx context.Context, id string) {
	l, ok := d.pools.Get(id)
	if !ok || l.ContainerID == "" {
		return
	}
	c, err := d.eng.Inspect(ctx, l.ContainerID)
	switch {
	case errors.Is(err, engine.ErrNotFound):
		_, _ = d.pools.End(ctx, id, api.EndLost)
	case err == nil && !c.Running:
		reason := api.EndDied
		if c.OOMKilled {
			reason = api.EndOOM
		}
		d.pools.ContainerDied(ctx, id, reason, c.ExitCode)
	}
}

// flushLoop writes proxy activity to the store every activityFlush.
func (d *daemon) flushLoop(ctx context.Context) {
	t := time.NewTicker(d.cfg.ActivityFlush.D())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.flush(ctx)
		}
	}
}

// flush writes the activity seen since the last flush.
func (d *daemon) flush(ctx context.Context) {
	since := d.lastFlush
	d.lastFlush = time.Now()
	acts := d.proxy.ActivitySince(since)
	if len(acts) == 0 {
		return
	}
	d.pools.NoteActivity(acts)
	if _, err := d.store.TouchLaunches(ctx, acts); err != nil {
		d.log.Warn().Err(err).Msg("record activity")
	}
}

// pruneLoop drops history older than the retention, hourly.
func (d *daemon) pruneLoop(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := d.store.PruneHistory(ctx, time.Now()); err != nil {
			d.log.Warn().Err(err).Msg("prune history")
		} else if n > 0 {
			d.log.Info().Int("pruned", n).Msg("pruned launch history")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// removeAll ends every live launch (onShutdown: remove).
func (d *daemon) removeAll(ctx context.Context) {
	for _, l := range d.pools.List("") {
		if _, err := d.pools.End(ctx, l.ID, api.EndStopped); err != nil && !errors.Is(err, pool.ErrNotFound) {
			d.log.Warn().Err(err).Str("launch", l.ID).Msg("remove at shutdown")
		}
	}
}

// httpErrorLog sends net/http's own complaints (TLS junk, hijack errors) to
// the logger.
func httpErrorLog(log zerolog.Logger) *stdlog.Logger {
	return stdlog.New(log.With().Str("component", "http").Logger(), "", 0)
}
