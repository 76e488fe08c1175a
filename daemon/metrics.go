package daemon

import (
	"net/http"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nbpool/nbpool/pool"
	"github.com/nbpool/nbpool/proxy"
)

// metrics are nbpool's Prometheus metrics, on a registry of their own. Event
// metrics are fed by the pool (as its Observer); state metrics are read from
// the pools and the proxy at scrape time.
type metrics struct {
	reg          *prometheus.Registry
	spawn        *prometheus.HistogramVec
	create       *prometheus.HistogramVec
	createErrors *prometheus.CounterVec
	ended        *prometheus.CounterVec
	engineErrors prometheus.Counter
}

var _ pool.Observer = (*metrics)(nil)

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		spawn: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nbpool_spawn_seconds",
			Help:    "Time from a launch request to a claimed launch; kind is warm (from the pool) or cold (started for the request).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"binding", "kind"}),
		create: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nbpool_container_ready_seconds",
			Help:    "Time to create, start and probe a container until its notebook server answers.",
			Buckets: []float64{.1, .25, .5, 1, 2, 4, 8, 15, 30, 60},
		}, []string{"binding"}),
		createErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nbpool_container_failures_total",
			Help: "Containers that failed to become ready.",
		}, []string{"binding"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nbpool_launches_ended_total",
			Help: "Launches ended, by reason (culled-idle, culled-age, stopped, died, oom, lost, failed, …).",
		}, []string{"binding", "reason"}),
		engineErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nbpool_engine_errors_total",
			Help: "Times the Docker engine stopped answering (event stream broke).",
		}),
	}
	m.reg.MustRegister(m.spawn, m.create, m.createErrors, m.ended, m.engineErrors,
		// go_gc_heap_live_bytes (the heap the last GC kept) besides the
		// defaults: the figure that shows a leak without forcing a GC.
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
			collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watch registers the state metrics of the pools and the proxy.
func (m *metrics) watch(pools *pool.Manager, px *proxy.Proxy) {
	m.reg.MustRegister(&stateCollector{pools: pools, proxy: px})
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Claimed implements pool.Observer.
func (m *metrics) Claimed(binding string, cold bool, wait time.Duration) {
	kind := "warm"
	if cold {
		kind = "cold"
	}
	m.spawn.WithLabelValues(binding, kind).Observe(wait.Seconds())
}

// Created implements pool.Observer.
func (m *metrics) Created(binding string, took time.Duration, err error) {
	if err != nil {
		m.createErrors.WithLabelValues(binding).Inc()
		return
	}
	m.create.WithLabelValues(binding).Observe(took.Seconds())
}

// Ended implements pool.Observer.
func (m *metrics) Ended(binding, reason string) { m.ended.WithLabelValues(binding, reason).Inc() }

// stateCollector reads gauges at scrape time.
type stateCollector struct {
	pools *pool.Manager
	proxy *proxy.Proxy
}

var (
	descLaunches = prometheus.NewDesc("nbpool_launches", "Live launches by binding and state (warming, available, claimed).",
		[]string{"binding", "state"}, nil)
	descPoolMin  = prometheus.NewDesc("nbpool_pool_min", "Warm containers a pool keeps available.", []string{"binding"}, nil)
	descCapacity = prometheus.NewDesc("nbpool_capacity", "Most live containers of all bindings together.", nil, nil)
	descRequests = prometheus.NewDesc("nbpool_proxy_requests_total", "Requests proxied to notebook servers, websocket upgrades included.", nil, nil)
	descRefused  = prometheus.NewDesc("nbpool_proxy_refused_total", "Proxy requests refused, by reason (forbidden, notfound, unreachable).", []string{"reason"}, nil)
	descWSOpen   = prometheus.NewDesc("nbpool_proxy_websockets_open", "Websocket tunnels open now.", nil, nil)
	descWSTotal  = prometheus.NewDesc("nbpool_proxy_websockets_total", "Websocket tunnels opened.", nil, nil)
	descRoutes   = prometheus.NewDesc("nbpool_proxy_routes", "Routes in the proxy table (claimed launches).", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLaunches, descPoolMin, descCapacity, descRequests, descRefused, descWSOpen, descWSTotal, descRoutes} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, p := range c.pools.Pools() {
		gauge(descLaunches, float64(p.Pending), p.Binding, "warming")
		gauge(descLaunches, float64(p.Available), p.Binding, "available")
		gauge(descLaunches, float64(p.Running), p.Binding, "claimed")
		gauge(descPoolMin, float64(p.MinPool), p.Binding)
	}
	gauge(descCapacity, float64(c.pools.Capacity()))
	s := c.proxy.Stats()
	counter(descRequests, s.Requests)
	counter(descRefused, s.Forbidden, "forbidden")
	counter(descRefused, s.NotFound, "notfound")
	counter(descRefused, s.Unreachable, "unreachable")
	gauge(descWSOpen, float64(s.OpenWebsockets))
	counter(descWSTotal, s.Websockets)
	gauge(descRoutes, float64(s.Routes))
}
