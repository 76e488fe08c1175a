package api

import (
	"net/http"
	"strings"
)

// Auth is who may call an endpoint.
type Auth int

// The kinds of caller an endpoint accepts.
const (
	// AuthNone: anyone.
	AuthNone Auth = iota
	// AuthAdmin: the admin token.
	AuthAdmin
	// AuthSpawn: anyone, unless the daemon's config restricts spawning to
	// the admin (spawnAuth: admin).
	AuthSpawn
	// AuthLaunch: the admin token or the launch's own token.
	AuthLaunch
)

// String names the auth kind for the docs.
func (a Auth) String() string {
	return [...]string{"none", "admin token", "none, or admin token if spawnAuth is admin", "admin token or the launch's token"}[a]
}

// Param is a path or query parameter of an endpoint.
type Param struct {
	Name        string
	In          string // "path" or "query"
	Type        string // "string", "integer" or "boolean"
	Description string
	Required    bool
}

// Endpoint declares one API endpoint. Everything else — the router, the
// OpenAPI document, the docs page, the Go client and the CLI — is derived
// from these declarations.
type Endpoint struct {
	// Name is "<group>.<verb>", e.g. "bindings.create"; it keys the handler.
	Name  string
	Group string
	// Command is the CLI command, e.g. "bindings create"; empty for none.
	Command     string
	Method      string
	Path        string
	Aliases     []string // other paths routed to the same handler
	Description string
	// Msg is what a client shows while the request runs.
	Msg    string
	Params []Param
	Auth   Auth
	// Request and Response are zero values of the body types (nil: none).
	Request  any
	Response any
	// ContentType of the success body; "application/json" when empty.
	ContentType string
	Success     int
	// Also lists other success statuses (202 for a cold start).
	Also []int
	// Errors are the endpoint's own errors; the global ones apply to all.
	Errors []ErrorSpec
	// Compat marks tmpnb-compatible endpoints, which answer in tmpnb's shapes.
	Compat bool
	// Example is a sample request body for the docs.
	Example string
}

// GlobalErrors may be returned by any endpoint.
func GlobalErrors() []ErrorSpec {
	return []ErrorSpec{ErrUnauthorized, ErrMalformedRequest, ErrTooLarge, ErrFull,
		ErrEngineUnavailable, ErrShuttingDown, ErrInternal, ErrRouteNotFound}
}

// ClientErrors are reported by the client when no answer arrives.
func ClientErrors() []ErrorSpec { return []ErrorSpec{ErrRefused, ErrTimeout} }

// AllowsError reports whether e may answer for name: one of its own errors
// or a global one.
func (e Endpoint) AllowsError(name string) bool {
	for _, errs := range [][]ErrorSpec{e.Errors, GlobalErrors()} {
		for _, s := range errs {
			if s.Name == name {
				return true
			}
		}
	}
	return false
}

// PathParams returns the endpoint's path parameters in path order.
func (e Endpoint) PathParams() []Param {
	var ps []Param
	for _, p := range e.Params {
		if p.In == "path" {
			ps = append(ps, p)
		}
	}
	return ps
}

// Lookup returns the endpoint with the given name.
func Lookup(name string) (Endpoint, bool) {
	for _, e := range Endpoints() {
		if e.Name == name {
			return e, true
		}
	}
	return Endpoint{}, false
}

var (
	pBindingName = Param{Name: "name", In: "path", Type: "string", Required: true, Description: "binding name"}
	pBinding     = Param{Name: "binding", In: "path", Type: "string", Required: true, Description: "binding name"}
	pLaunchID    = Param{Name: "id", In: "path", Type: "string", Required: true, Description: "launch id (the <id> of /user/<id>/)"}
)

// Endpoints returns the catalog, a fresh copy on every call.
func Endpoints() []Endpoint {
	bindingErrs := []ErrorSpec{ErrInvalidName, ErrInvalidBinding, ErrInvalidImage, ErrInvalidPool}
	return []Endpoint{
		{
			Name: "bindings.list", Group: "bindings", Command: "bindings list",
			Method: http.MethodGet, Path: "/api/bindings",
			Description: "List all bindings.", Msg: "Listing bindings",
			Response: BindingList{}, Success: 200,
		},
		{
			Name: "bindings.create", Group: "bindings", Command: "bindings create",
			Method: http.MethodPost, Path: "/api/bindings", Auth: AuthAdmin,
			Description: "Create a binding: an environment template with its pool. Its pool starts filling at once.",
			Msg:         "Creating binding",
			Request:     Binding{}, Response: Binding{}, Success: 201,
			Errors:  append([]ErrorSpec{ErrBindingExists}, bindingErrs...),
			Example: `{"name": "fake", "image": "nbpool-test/fakenb:latest", "command": ["/fakenb", "--port={port}", "--base-url={base_url}", "--token={token}"], "pool": {"min": 2}}`,
		},
		{
			Name: "bindings.get", Group: "bindings", Command: "bindings get",
			Method: http.MethodGet, Path: "/api/bindings/{name}", Params: []Param{pBindingName},
			Description: "Show one binding.", Msg: "Getting binding {name}",
			Response: Binding{}, Success: 200, Errors: []ErrorSpec{ErrBindingNotFound},
		},
		{
			Name: "bindings.exists", Group: "bindings",
			Method: http.MethodHead, Path: "/api/bindings/{name}", Params: []Param{pBindingName},
			Description: "Check whether a binding exists: 200 or 404, no body.", Msg: "Checking binding {name}",
			Success: 200, Errors: []ErrorSpec{ErrBindingNotFound},
		},
		{
			Name: "bindings.put", Group: "bindings", Command: "bindings apply",
			Method: http.MethodPut, Path: "/api/bindings/{name}", Params: []Param{pBindingName}, Auth: AuthAdmin,
			Description: "Create or replace a binding. Available containers made from the old definition are replaced; claimed ones keep running.",
			Msg:         "Writing binding {name}",
			Request:     Binding{}, Response: Binding{}, Success: 200, Also: []int{201},
			Errors:  bindingErrs,
			Example: `{"name": "fake", "image": "nbpool-test/fakenb:latest", "pool": {"min": 3, "max": 10}}`,
		},
		{
			Name: "bindings.delete", Group: "bindings", Command: "bindings delete",
			Method: http.MethodDelete, Path: "/api/bindings/{name}", Auth: AuthAdmin,
			Params: []Param{pBindingName,
				{Name: "force", In: "query", Type: "boolean", Description: "also end the binding's claimed launches"}},
			Description: "Delete a binding and its available containers. Refused while launches are claimed unless force is set.",
			Msg:         "Deleting binding {name}",
			Success:     204, Errors: []ErrorSpec{ErrBindingNotFound, ErrBindingInUse},
		},
		{
			Name: "binders.spawn", Group: "binders", Command: "spawn",
			Method: http.MethodPost, Path: "/api/binders/{binding}", Params: []Param{pBinding}, Auth: AuthSpawn,
			Description: "Launch a notebook on a binding. A warm container answers 201 with its location and token at once; " +
				"an empty pool starts a container and answers 202: follow its events or poll its uri until it is claimed.",
			Msg:     "Launching a notebook on {binding}",
			Request: SpawnRequest{}, Response: Launch{}, Success: 201, Also: []int{202},
			Errors:  []ErrorSpec{ErrBindingNotFound, ErrImageUnavailable, ErrSpawnFailed},
			Example: `{"path": "notebooks/intro.ipynb"}`,
		},
		{
			Name: "binders.list", Group: "binders", Command: "launches list",
			Method: http.MethodGet, Path: "/api/binders/{binding}", Auth: AuthAdmin,
			Params: []Param{pBinding,
				{Name: "state", In: "query", Type: "string", Description: "warming, available, claimed, live (the default: all three) or ended (history)"}},
			Description: "List a binding's launches.", Msg: "Listing launches of {binding}",
			Response: LaunchList{}, Success: 200, Errors: []ErrorSpec{ErrBindingNotFound},
		},
		{
			Name: "binders.status", Group: "binders", Command: "launches get",
			Method: http.MethodGet, Path: "/api/binders/{binding}/{id}", Params: []Param{pBinding, pLaunchID},
			Description: "Show a launch: state, progress, location. The token is shown only to the admin and to the launch's token holder.",
			Msg:         "Getting launch {id}",
			Response:    Launch{}, Success: 200, Errors: []ErrorSpec{ErrLaunchNotFound},
		},
		{
			Name: "binders.events", Group: "binders",
			Method: http.MethodGet, Path: "/api/binders/{binding}/{id}/events", Params: []Param{pBinding, pLaunchID},
			Description: "Follow a starting launch as text/event-stream: one JSON event per step, the last with ready or failed.",
			Msg:         "Waiting for launch {id}",
			Response:    Event{}, ContentType: "text/event-stream", Success: 200,
			Errors: []ErrorSpec{ErrLaunchNotFound},
		},
		{
			Name: "binders.stop", Group: "binders", Command: "launches stop",
			Method: http.MethodDelete, Path: "/api/binders/{binding}/{id}", Params: []Param{pBinding, pLaunchID}, Auth: AuthLaunch,
			Description: "Stop a launch: its container is removed and its URL ends.",
			Msg:         "Stopping launch {id}",
			Response:    Launch{}, Success: 200, Errors: []ErrorSpec{ErrLaunchNotFound},
		},
		{
			Name: "pools.list", Group: "pools", Command: "pools list",
			Method: http.MethodGet, Path: "/api/pools",
			Description: "Show every binding's pool.", Msg: "Listing pools",
			Response: PoolList{}, Success: 200,
		},
		{
			Name: "pools.get", Group: "pools", Command: "pools get",
			Method: http.MethodGet, Path: "/api/pools/{binding}", Params: []Param{pBinding},
			Description: "Show one binding's pool.", Msg: "Getting pool {binding}",
			Response: Pool{}, Success: 200, Errors: []ErrorSpec{ErrBindingNotFound},
		},
		{
			Name: "pools.set", Group: "pools", Command: "pools set",
			Method: http.MethodPut, Path: "/api/pools/{binding}", Params: []Param{pBinding}, Auth: AuthAdmin,
			Description: "Resize a pool at runtime: it grows or shrinks at once, claimed launches untouched. The size persists across restarts.",
			Msg:         "Resizing pool {binding}",
			Request:     PoolUpdate{}, Response: Pool{}, Success: 200,
			Errors:  []ErrorSpec{ErrBindingNotFound, ErrInvalidPool},
			Example: `{"minPool": 8, "maxPool": 20}`,
		},
		{
			Name: "pools.update", Group: "pools",
			Method: http.MethodPost, Path: "/api/pools/{binding}", Params: []Param{pBinding}, Auth: AuthAdmin,
			Description: "Same as PUT /api/pools/{binding} (the Binder API allows either).",
			Msg:         "Resizing pool {binding}",
			Request:     PoolUpdate{}, Response: Pool{}, Success: 200,
			Errors:  []ErrorSpec{ErrBindingNotFound, ErrInvalidPool},
			Example: `{"minPool": 8}`,
		},
		{
			Name: "tmpnb.spawn", Group: "tmpnb",
			Method: http.MethodPost, Path: "/api/spawn/", Aliases: []string{"/api/spawn"}, Auth: AuthSpawn, Compat: true,
			Description: "tmpnb-compatible launch on the default binding (or the one named in the body): 200 {\"url\": \"/user/<id>/tree?token=…\"}, " +
				"waiting for a cold start if the pool is empty; 429 {\"status\": \"full\"} at capacity.",
			Msg:     "Launching a notebook",
			Request: TmpnbSpawnRequest{}, Response: TmpnbSpawn{}, Success: 200,
			Errors:  []ErrorSpec{ErrBindingNotFound, ErrImageUnavailable, ErrSpawnFailed},
			Example: `{}`,
		},
		{
			Name: "tmpnb.stats", Group: "tmpnb",
			Method: http.MethodGet, Path: "/api/stats", Aliases: []string{"/api/stats/"}, Compat: true,
			Description: "tmpnb-compatible statistics of the default binding's pool and the capacity.",
			Msg:         "Getting stats",
			Response:    Stats{}, Success: 200,
		},
		{
			Name: "ops.health", Group: "ops", Command: "health",
			Method: http.MethodGet, Path: "/api/health",
			Description: "Health of the daemon: the store, the Docker engine and the pools. 503 when degraded.",
			Msg:         "Checking health",
			Response:    Health{}, Success: 200, Also: []int{503},
		},
		{
			Name: "ops.version", Group: "ops", Command: "version --server",
			Method: http.MethodGet, Path: "/api/version",
			Description: "Version of the running daemon.", Msg: "Getting version",
			Response: Version{}, Success: 200,
		},
		{
			Name: "ops.openapi", Group: "ops",
			Method: http.MethodGet, Path: "/api/openapi.json",
			Description: "This API as an OpenAPI 3.1 document, generated from the catalog.",
			Msg:         "Getting the OpenAPI document",
			Response:    map[string]any{}, Success: 200,
		},
		{
			Name: "ops.docs", Group: "ops",
			Method: http.MethodGet, Path: "/api/docs",
			Description: "This API as a readable page, generated from the catalog.",
			Msg:         "Getting the API docs", ContentType: "text/html", Success: 200,
		},
	}
}

// Expand fills "{param}" placeholders of a path or message with values.
func Expand(tmpl string, values map[string]string) string {
	for k, v := range values {
		tmpl = strings.ReplaceAll(tmpl, "{"+k+"}", v)
	}
	return tmpl
}
