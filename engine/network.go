package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
)

// iccOption is the bridge driver option that turns inter-container traffic
// on or off; nbpool keeps it off, so one user's container cannot reach
// another's.
const iccOption = "com.docker.network.bridge.enable_icc"

// EnsureNetwork makes sure the launch network exists and selects it for Run:
// when it is missing, it creates a bridge with inter-container traffic off,
// labelled LabelManaged=true. An existing network is used as it is (a
// warning is logged when containers on it can talk to each other).
//
// EnsureNetwork is idempotent and safe against other daemons creating the
// same network at the same time. Engines before API 1.44 check for a
// duplicate name before creating, but not atomically: concurrent creates all
// succeed and leave several networks with one name, on which every use of
// the name fails as ambiguous. So EnsureNetwork settles on the oldest
// network of that name, removes the other nbpool-managed ones it can (those
// without containers), and Run then attaches containers by the network's ID.
//
// Call it once at start, before Run; Run calls it again by itself if the
// network it selected has disappeared. The network is shared by every
// instance that names it, so it carries no LabelInstance, and nbpool never
// removes the network it runs on.
func (e *Engine) EnsureNetwork(ctx context.Context) error {
	id, err := e.findNetwork(ctx)
	if err != nil {
		return err
	}
	if id == "" {
		if err := e.createNetwork(ctx); err != nil {
			return err
		}
		// Settle against anyone who created one at the same time.
		if id, err = e.findNetwork(ctx); err != nil {
			return err
		}
		if id == "" {
			return fmt.Errorf("create network %s: gone right after it was created", e.network)
		}
	}
	e.networkID.Store(&id)
	return nil
}

// networkRef names the launch network in a create request: its ID once
// EnsureNetwork selected one, else its name.
func (e *Engine) networkRef() string {
	if id := e.networkID.Load(); id != nil {
		return *id
	}
	return e.network
}

// networkConfig pins a new container's endpoint to the network EnsureNetwork
// selected. The endpoint's NetworkID, not only the network mode, is what
// makes an engine before API 1.44 start the container when several networks
// share the name; without it, start fails as ambiguous.
func (e *Engine) networkConfig() *network.NetworkingConfig {
	id := e.networkID.Load()
	if id == nil {
		return nil // EnsureNetwork not called: by name
	}
	return &network.NetworkingConfig{
		EndpointsConfig: map[string]*network.EndpointSettings{*id: {NetworkID: *id}},
	}
}

func (e *Engine) createNetwork(ctx context.Context) error {
	cctx, cancel := e.callContext(ctx)
	defer cancel()
	_, err := e.networks.NetworkCreate(cctx, e.network, network.CreateOptions{
		Driver:  "bridge",
		Options: map[string]string{iccOption: "false"},
		Labels:  map[string]string{LabelManaged: "true"},
	})
	switch {
	case err == nil:
		e.log.Info().Str("network", e.network).Msg("created launch network")
		return nil
	case cerrdefs.IsConflict(err):
		return nil // created by someone else since we looked
	default:
		return fmt.Errorf("create network %s: %w", e.network, classify(ctx, err))
	}
}

// findNetwork returns the ID of the oldest network named e.network, or ""
// when there is none, and removes the younger nbpool-managed duplicates.
func (e *Engine) findNetwork(ctx context.Context) (string, error) {
	cctx, cancel := e.callContext(ctx)
	list, err := e.networks.NetworkList(cctx, network.ListOptions{
		Filters: filters.NewArgs(filters.Arg("name", e.network)), // a substring match
	})
	cancel()
	if err != nil {
		return "", fmt.Errorf("list networks named %s: %w", e.network, classify(ctx, err))
	}
	list = slices.DeleteFunc(list, func(n network.Summary) bool { return n.Name != e.network })
	if len(list) == 0 {
		return "", nil
	}
	slices.SortFunc(list, func(a, b network.Summary) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})

	keep := list[0]
	if keep.Driver != "bridge" || keep.Options[iccOption] != "false" {
		e.log.Warn().Str("network", e.network).Str("driver", keep.Driver).Str(iccOption, keep.Options[iccOption]).
			Msg("launch network is not a bridge with inter-container traffic off; using it as it is")
	}
	for _, dup := range list[1:] {
		if dup.Labels[LabelManaged] != "true" {
			continue
		}
		err := e.removeNetwork(ctx, dup.ID)
		e.log.Warn().Err(err).Str("network", e.network).Str("kept", shortID(keep.ID)).Str("duplicate", shortID(dup.ID)).
			Msg("several networks share the launch network's name; removing the younger one")
	}
	return keep.ID, nil
}

// removeNetwork removes a network; one already gone is not an error.
func (e *Engine) removeNetwork(ctx context.Context, id string) error {
	cctx, cancel := e.callContext(ctx)
	defer cancel()
	if err := e.networks.NetworkRemove(cctx, id); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove network %s: %w", shortID(id), classify(ctx, err))
	}
	return nil
}

// isNetworkGone tells whether a create failed because its network is missing.
func isNetworkGone(err error) bool {
	return cerrdefs.IsNotFound(err) && strings.Contains(strings.ToLower(err.Error()), "network")
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
