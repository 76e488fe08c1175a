package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
	"github.com/rs/zerolog"
)

// ErrNotFound is returned (wrapped) when the container asked for does not exist.
var ErrNotFound = errors.New("no such container")

// ErrImageUnavailable is returned (wrapped) by EnsureImage when the image is
// not on the host and pulling it failed; the error text says why.
var ErrImageUnavailable = errors.New("image unavailable")

// ErrUnavailable is returned (wrapped) when the Docker engine does not
// answer: the connection failed, the engine reported itself unavailable, or
// a request ran past its per-call timeout while the caller's context was
// still live.
var ErrUnavailable = errors.New("docker engine unavailable")

// ErrConflict is returned (wrapped) by Run when a container with the same
// name already exists.
var ErrConflict = errors.New("container name already in use")

// Labels nbpool puts on everything it creates. LabelManaged is always "true";
// LabelInstance is Options.Instance, so two daemons (or test runs) on one
// engine never see each other's containers.
const (
	LabelManaged  = "nbpool.managed"
	LabelInstance = "nbpool.instance"
	LabelBinding  = "nbpool.binding"
	LabelLaunch   = "nbpool.launch"
	// LabelPort records Spec.Port, so that List and Inspect can rebuild
	// Container.Address after a daemon restart.
	LabelPort = "nbpool.port"
)

const (
	defaultNetwork = "nbpool"
	defaultTimeout = 30 * time.Second
	// negotiateTimeout caps New's wait for the engine.
	negotiateTimeout = 2 * time.Second
)

// Options configures New.
type Options struct {
	// Host is the Docker endpoint (unix:///var/run/docker.sock,
	// tcp://host:2375...). Empty means the environment (DOCKER_HOST,
	// DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, DOCKER_API_VERSION) or the
	// default socket.
	Host string
	// Network is the user-defined bridge network launches are attached to.
	// Default "nbpool".
	Network string
	// Instance is this daemon's instance name, put on every container as
	// LabelInstance and used to select them. Required.
	Instance string
	// Log receives the engine's log lines (with component=engine).
	Log zerolog.Logger
	// Timeout caps each Docker request. Default 30s. Image pulls and the
	// event stream are bounded only by the caller's context.
	Timeout time.Duration
}

// Engine is nbpool's view of the local Docker engine: containers, the launch
// network, images and container events, all scoped to one instance.
//
// An Engine is safe for concurrent use; it holds no locks of its own. Create
// it once with New and Close it when the daemon stops.
type Engine struct {
	containers client.ContainerAPIClient
	images     client.ImageAPIClient
	networks   client.NetworkAPIClient
	system     client.SystemAPIClient
	closer     io.Closer

	network string
	// networkID is the launch network's ID once EnsureNetwork selected it.
	networkID atomic.Pointer[string]
	instance  string
	timeout   time.Duration
	log       zerolog.Logger
}

// New returns an Engine talking to the Docker engine at opts.Host (or the
// environment's). It asks the engine for its API version, waiting at most
// two seconds (and no longer than ctx); when the engine does not answer, New
// logs a warning and succeeds anyway, the daemon starts degraded, Ping
// reports ErrUnavailable, and the version is negotiated on the first request
// that reaches the engine.
func New(ctx context.Context, opts Options) (*Engine, error) {
	if opts.Instance == "" {
		return nil, errors.New("engine: an instance name is required")
	}
	if opts.Network == "" {
		opts.Network = defaultNetwork
	}
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}

	clientOpts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if opts.Host != "" {
		clientOpts = append(clientOpts, client.WithHost(opts.Host))
	}
	cli, err := client.NewClientWithOpts(clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("engine: docker client for %q: %w", opts.Host, err)
	}

	e := &Engine{
		containers: cli,
		images:     cli,
		networks:   cli,
		system:     cli,
		closer:     cli,
		network:    opts.Network,
		instance:   opts.Instance,
		timeout:    opts.Timeout,
		log:        opts.Log.With().Str("component", "engine").Logger(),
	}

	// Negotiate the API version now if the engine answers quickly, so that
	// the log says what we talk to; if not, the client negotiates on the
	// first request that reaches the engine.
	pctx, cancel := context.WithTimeout(ctx, min(e.timeout, negotiateTimeout))
	defer cancel()
	log := e.log.With().Str("host", cli.DaemonHost()).Str("network", e.network).Str("instance", e.instance).Logger()
	if ping, err := cli.Ping(pctx); err != nil {
		log.Warn().Err(err).Msg("docker engine not answering; starting without it")
	} else {
		cli.NegotiateAPIVersionPing(ping)
		log.Debug().Str("api", cli.ClientVersion()).Msg("docker engine answers")
	}
	return e, nil
}

// Close releases the client's idle connections. Streams opened by Events end
// when their context does, not on Close.
func (e *Engine) Close() error {
	return e.closer.Close()
}

// Instance returns the instance name this Engine labels and selects by.
func (e *Engine) Instance() string {
	return e.instance
}

// Ping checks that the engine answers within the per-call timeout. The error
// wraps ErrUnavailable when it does not.
func (e *Engine) Ping(ctx context.Context) error {
	cctx, cancel := e.callContext(ctx)
	defer cancel()
	if _, err := e.system.Ping(cctx); err != nil {
		return fmt.Errorf("ping docker engine: %w", classify(ctx, err))
	}
	return nil
}

// callContext derives the context of one Docker request from the caller's.
func (e *Engine) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.timeout)
}

// classify maps an SDK error to the package's sentinels, keeping the original
// in the chain. ctx is the caller's context (not the per-call one), so that
// a per-call timeout reads as an engine that does not answer while the
// caller's own cancellation stays a plain context error.
func classify(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case client.IsErrConnectionFailed(err), cerrdefs.IsUnavailable(err):
		return mark(ErrUnavailable, err)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return fmt.Errorf("%w: no answer in time: %w", ErrUnavailable, err)
	default:
		return err
	}
}

// mark returns err unchanged in text, but matching sentinel with errors.Is.
// Docker's own messages ("No such container: x", "Cannot connect to the
// Docker daemon at ...") already say what the sentinel would.
func mark(sentinel, err error) error {
	return marked{sentinel: sentinel, err: err}
}

type marked struct{ sentinel, err error }

func (m marked) Error() string   { return m.err.Error() }
func (m marked) Unwrap() []error { return []error{m.sentinel, m.err} }
