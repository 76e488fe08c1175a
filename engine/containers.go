package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
)

// Spec describes one launch container for Run.
type Spec struct {
	// Name is the container name, e.g. "nbpool-<instance>-<launch id>".
	Name  string
	Image string
	// Cmd is the argv; empty means the image's default.
	Cmd []string
	Env map[string]string
	// Binding and Launch become LabelBinding and LabelLaunch.
	Binding, Launch string
	// Labels are extra labels; nbpool's own labels win over them.
	Labels map[string]string
	// Memory is the memory limit in bytes, 0 for none. Swap is set to the
	// same value (no swap) where the kernel accounts for it.
	Memory int64
	// NanoCPUs is the CPU quota in 1e-9 CPUs, 0 for none.
	NanoCPUs int64
	// PidsLimit caps the number of processes, 0 for none.
	PidsLimit int64
	// CapAdd lists the capabilities added back after all are dropped.
	CapAdd []string
	// Port is the port the server inside listens on; it is recorded as
	// LabelPort and makes Container.Address.
	Port int
}

// Container is a managed container as the engine reports it.
type Container struct {
	ID, Name string
	// Binding and Launch come from the container's labels.
	Binding, Launch string
	// Image is the reference the container was created from (in List, the
	// image ID instead when that tag has since moved to another image).
	Image   string
	Running bool
	// Status is Docker's state: created, running, paused, restarting,
	// removing, exited or dead.
	Status string
	// ExitCode is the last exit code; List parses it from Docker's status
	// text, Inspect reads it.
	ExitCode int
	// OOMKilled is set by Inspect only; List leaves it false.
	OOMKilled bool
	// IP is the container's address on the launch network, empty when it is
	// not attached (for instance when stopped).
	IP string
	// Address is IP:port for the proxy, empty without an IP or LabelPort.
	Address string
	Created time.Time
}

// Run creates and starts a launch container: attached to the launch network
// only, no published ports, no restart policy, all capabilities dropped but
// Spec.CapAdd, no-new-privileges, docker-init as PID 1 (it reaps the kernels'
// children), the limits of the Spec, and nbpool's labels. It returns the
// container inspected after start, with its IP and Address.
//
// The image must be on the host (see EnsureImage); Run does not pull, and a
// missing image fails with ErrImageUnavailable. A name already in use fails
// with ErrConflict. If anything fails after the container was created, Run
// removes it, even when ctx has ended, and joins the removal's error: a
// failed Run leaves nothing behind. When ctx ends during the create request,
// Run waits for its answer (at most the per-call timeout) to remove what it
// made.
func (e *Engine) Run(ctx context.Context, s Spec) (Container, error) {
	if s.Name == "" || s.Image == "" {
		return Container{}, errors.New("run container: name and image are required")
	}
	if err := ctx.Err(); err != nil {
		return Container{}, fmt.Errorf("create container %s: %w", s.Name, err)
	}
	// The create request outlives ctx (bounded by the per-call timeout): an
	// abandoned request does not stop the engine, which would finish
	// creating a container whose ID nobody has. The container is removed
	// below when ctx ended meanwhile.
	created, err := e.create(context.WithoutCancel(ctx), s)
	if isNetworkGone(err) {
		// Removed under us (by hand, or as a duplicate by another daemon):
		// select the launch network again and retry once.
		e.log.Warn().Err(err).Str("network", e.network).Msg("launch network gone; ensuring it again")
		if nerr := e.EnsureNetwork(ctx); nerr != nil {
			return Container{}, fmt.Errorf("create container %s: %w", s.Name, errors.Join(err, nerr))
		}
		created, err = e.create(context.WithoutCancel(ctx), s)
	}
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("create container %s: %w", s.Name, ctx.Err())
		if rmErr := e.Remove(context.WithoutCancel(ctx), created.ID); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", rmErr))
		}
		return Container{}, err
	}
	if err != nil {
		switch {
		case cerrdefs.IsConflict(err):
			err = mark(ErrConflict, err)
		case cerrdefs.IsNotFound(err) && strings.Contains(err.Error(), "No such image"):
			err = mark(ErrImageUnavailable, err)
		}
		return Container{}, fmt.Errorf("create container %s: %w", s.Name, classify(ctx, err))
	}
	for _, w := range created.Warnings {
		e.log.Debug().Str("container", s.Name).Str("launch", s.Launch).Str("binding", s.Binding).
			Str("warning", w).Msg("docker warning on create")
	}

	c, err := e.start(ctx, created.ID, s.Name)
	if err != nil {
		// The removal outlives a cancelled ctx; Remove caps it with its timeout.
		if rmErr := e.Remove(context.WithoutCancel(ctx), created.ID); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", rmErr))
		}
		return Container{}, err
	}
	return c, nil
}

// create sends the create request for s.
func (e *Engine) create(ctx context.Context, s Spec) (container.CreateResponse, error) {
	config, hostConfig, netConfig := e.createConfig(s)
	cctx, cancel := e.callContext(ctx)
	defer cancel()
	return e.containers.ContainerCreate(cctx, config, hostConfig, netConfig, nil, s.Name)
}

// start starts a created container and inspects it for its address.
func (e *Engine) start(ctx context.Context, id, name string) (Container, error) {
	cctx, cancel := e.callContext(ctx)
	defer cancel()
	if err := e.containers.ContainerStart(cctx, id, container.StartOptions{}); err != nil {
		return Container{}, fmt.Errorf("start container %s: %w", name, classify(ctx, err))
	}
	return e.Inspect(ctx, id)
}

// createConfig translates a Spec into Docker's create request.
func (e *Engine) createConfig(s Spec) (*container.Config, *container.HostConfig, *network.NetworkingConfig) {
	labels := maps.Clone(s.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelManaged] = "true"
	labels[LabelInstance] = e.instance
	labels[LabelBinding] = s.Binding
	labels[LabelLaunch] = s.Launch
	if s.Port > 0 {
		labels[LabelPort] = strconv.Itoa(s.Port)
	}

	env := make([]string, 0, len(s.Env))
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		env = append(env, k+"="+s.Env[k])
	}

	config := &container.Config{
		Image:  s.Image,
		Cmd:    s.Cmd,
		Env:    env,
		Labels: labels,
	}
	dockerInit := true
	hostConfig := &container.HostConfig{
		NetworkMode:   container.NetworkMode(e.networkRef()),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		SecurityOpt:   []string{"no-new-privileges"},
		CapDrop:       []string{"ALL"},
		CapAdd:        s.CapAdd,
		Init:          &dockerInit,
		Resources: container.Resources{
			Memory:     s.Memory,
			MemorySwap: s.Memory, // equal to Memory: no swap; 0 leaves both unset
			NanoCPUs:   s.NanoCPUs,
		},
	}
	if s.PidsLimit > 0 {
		hostConfig.PidsLimit = &s.PidsLimit
	}
	return config, hostConfig, e.networkConfig()
}

// Inspect returns the container with the given ID or name, managed or not.
// A missing container fails with ErrNotFound.
func (e *Engine) Inspect(ctx context.Context, id string) (Container, error) {
	cctx, cancel := e.callContext(ctx)
	defer cancel()
	resp, err := e.containers.ContainerInspect(cctx, id)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			err = mark(ErrNotFound, err)
		}
		return Container{}, fmt.Errorf("inspect container %s: %w", id, classify(ctx, err))
	}
	return e.fromInspect(resp), nil
}

// Remove force-removes the container and its anonymous volumes. A container
// that is already gone, or whose removal is already in progress, is not an
// error.
func (e *Engine) Remove(ctx context.Context, id string) error {
	cctx, cancel := e.callContext(ctx)
	defer cancel()
	err := e.containers.ContainerRemove(cctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress"):
		return nil
	default:
		return fmt.Errorf("remove container %s: %w", id, classify(ctx, err))
	}
}

// List returns all containers of this instance (LabelManaged=true and
// LabelInstance=Instance()), running or not, in one request: IP and Address
// come from the list data, ExitCode from Docker's status text, and OOMKilled
// is not known (use Inspect).
func (e *Engine) List(ctx context.Context) ([]Container, error) {
	cctx, cancel := e.callContext(ctx)
	defer cancel()
	summaries, err := e.containers.ContainerList(cctx, container.ListOptions{
		All:     true,
		Filters: e.labelFilters(),
	})
	if err != nil {
		return nil, fmt.Errorf("list containers of instance %s: %w", e.instance, classify(ctx, err))
	}
	out := make([]Container, 0, len(summaries))
	for _, s := range summaries {
		out = append(out, e.fromSummary(s))
	}
	return out, nil
}

// labelFilters selects this instance's managed objects.
func (e *Engine) labelFilters() filters.Args {
	return filters.NewArgs(
		filters.Arg("label", LabelManaged+"=true"),
		filters.Arg("label", LabelInstance+"="+e.instance),
	)
}

func (e *Engine) fromInspect(r container.InspectResponse) Container {
	c := Container{ID: r.ID}
	if r.ContainerJSONBase != nil {
		c.Name = strings.TrimPrefix(r.Name, "/")
		c.Created, _ = time.Parse(time.RFC3339Nano, r.Created)
		if st := r.State; st != nil {
			c.Running = st.Running
			c.Status = string(st.Status)
			c.ExitCode = st.ExitCode
			c.OOMKilled = st.OOMKilled
		}
	}
	var labels map[string]string
	if r.Config != nil {
		c.Image = r.Config.Image
		labels = r.Config.Labels
	}
	var networks map[string]*network.EndpointSettings
	if r.NetworkSettings != nil {
		networks = r.NetworkSettings.Networks
	}
	e.fill(&c, labels, networks)
	return c
}

func (e *Engine) fromSummary(s container.Summary) Container {
	c := Container{
		ID:       s.ID,
		Image:    s.Image,
		Status:   string(s.State),
		Running:  s.State == container.StateRunning,
		ExitCode: exitCode(s.Status),
		Created:  time.Unix(s.Created, 0),
	}
	if len(s.Names) > 0 {
		c.Name = strings.TrimPrefix(s.Names[0], "/")
	}
	var networks map[string]*network.EndpointSettings
	if s.NetworkSettings != nil {
		networks = s.NetworkSettings.Networks
	}
	e.fill(&c, s.Labels, networks)
	return c
}

// fill sets the fields that come from labels and the launch network.
func (e *Engine) fill(c *Container, labels map[string]string, networks map[string]*network.EndpointSettings) {
	c.Binding = labels[LabelBinding]
	c.Launch = labels[LabelLaunch]
	if ep := networks[e.network]; ep != nil {
		c.IP = ep.IPAddress
	}
	if port := labels[LabelPort]; c.IP != "" && port != "" {
		c.Address = net.JoinHostPort(c.IP, port)
	}
}

// exitCode reads the code out of a status text like "Exited (137) 2 seconds
// ago"; it is 0 for any other status.
func exitCode(status string) int {
	rest, ok := strings.CutPrefix(status, "Exited (")
	if !ok {
		return 0
	}
	code, _, ok := strings.Cut(rest, ")")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(code)
	return n
}
