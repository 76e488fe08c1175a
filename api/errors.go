package api

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrorSpec declares one error nbpool can answer with: a stable name, an HTTP
// status, a message template and suggestions for what to do next. Templates
// name their arguments in braces, "no binding named {name}".
//
// Specs are declarations; make an error with New.
type ErrorSpec struct {
	Name        string
	Status      int
	Message     string
	Suggestions []string
	// Statuses lists other statuses this error may carry (unauthorized is
	// 401 without a token and 403 with a wrong one).
	Statuses []int
}

// Error is an error answer: what went wrong and what to do about it. It is
// the one error type the web layer maps to an HTTP response; it may wrap the
// domain error that caused it.
type Error struct {
	Name        string   `json:"name"`
	Status      int      `json:"status"`
	Message     string   `json:"message"`
	Suggestions []string `json:"suggestions"`
	// RetryAfter, in seconds, is sent as the Retry-After header when set.
	RetryAfter int `json:"-"`
	cause      error
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the domain error behind e, if any.
func (e *Error) Unwrap() error { return e.cause }

// Is matches any *Error of the same name: errors.Is(err, ErrFull.New())
// holds for any full error. (For a spec, use ErrFull.Is(err).)
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Name == e.Name
}

// Wrap records cause as the error behind e and returns e.
func (e *Error) Wrap(cause error) *Error {
	e.cause = cause
	return e
}

// WithStatus returns e with another of its spec's statuses.
func (e *Error) WithStatus(status int) *Error {
	e.Status = status
	return e
}

// New makes an Error from the spec. args are key, value pairs filling the
// templates; string values are quoted in the message and written plainly in
// the suggestions.
func (s ErrorSpec) New(args ...any) *Error {
	e := &Error{
		Name:        s.Name,
		Status:      s.Status,
		Message:     fill(s.Message, args, true),
		Suggestions: make([]string, 0, len(s.Suggestions)),
	}
	for _, sg := range s.Suggestions {
		e.Suggestions = append(e.Suggestions, fill(sg, args, false))
	}
	return e
}

// Is lets errors.Is(err, spec) hold for any error made from the spec.
func (s ErrorSpec) Is(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Name == s.Name
}

func fill(tmpl string, args []any, quote bool) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	pairs := make([]string, 0, len(args))
	for i := 0; i+1 < len(args); i += 2 {
		v := args[i+1]
		var s string
		switch v := v.(type) {
		case string:
			s = v
			if quote {
				s = strconv.Quote(v)
			}
		case error:
			s = v.Error()
		default:
			s = fmt.Sprint(v)
		}
		pairs = append(pairs, "{"+fmt.Sprint(args[i])+"}", s)
	}
	return strings.NewReplacer(pairs...).Replace(tmpl)
}

// Global errors: any endpoint may answer with them.
var (
	ErrUnauthorized = ErrorSpec{
		Name: "unauthorized", Status: 401, Statuses: []int{403},
		Message: "this request needs {who}",
		Suggestions: []string{
			"send the token as 'Authorization: token <token>' (or 'Bearer <token>')",
			"the admin token is the daemon's NBPOOL_ADMIN_TOKEN or the file named by adminTokenFile",
			"with the CLI, pass --token or set NBPOOL_TOKEN",
		},
	}
	ErrMalformedRequest = ErrorSpec{
		Name: "malformedRequest", Status: 400, Statuses: []int{422},
		Message: "malformed request: {reason}",
		Suggestions: []string{
			"check the body and the parameters against this endpoint in GET /api/docs: JSON, with only the fields listed",
		},
	}
	ErrTooLarge = ErrorSpec{
		Name: "tooLarge", Status: 413,
		Message:     "request body is larger than {limit}",
		Suggestions: []string{"send a body under {limit}"},
	}
	ErrFull = ErrorSpec{
		Name: "full", Status: 429,
		Message: "no container is free: {reason}",
		Suggestions: []string{
			"try again in a few seconds (see the Retry-After header)",
			"an admin can raise the daemon's capacity (config key capacity) or a binding's maximum (`nbpool pools set BINDING --max N`)",
		},
	}
	ErrEngineUnavailable = ErrorSpec{
		Name: "engineUnavailable", Status: 503,
		Message: "the Docker engine does not answer: {reason}",
		Suggestions: []string{
			"check that dockerd runs and that DOCKER_HOST (or /var/run/docker.sock) is reachable by nbpool",
			"see GET /api/health for the engine check",
		},
	}
	ErrInternal = ErrorSpec{
		Name: "internal", Status: 500,
		Message:     "internal error: {reason}",
		Suggestions: []string{"see the daemon's log for details and report it if it repeats"},
	}
	ErrShuttingDown = ErrorSpec{
		Name: "shuttingDown", Status: 503,
		Message:     "nbpool is shutting down and takes no new launches",
		Suggestions: []string{"retry in a few seconds, once the daemon is back"},
	}
	ErrRouteNotFound = ErrorSpec{
		Name: "routeNotFound", Status: 404, Statuses: []int{405},
		Message:     "no endpoint {method} {path}",
		Suggestions: []string{"see the endpoints in GET /api/docs or GET /api/openapi.json"},
	}
)

// Client-side errors: the client reports these when there is no answer.
var (
	ErrRefused = ErrorSpec{
		Name: "refused", Status: 0,
		Message: "cannot connect to nbpool at {url}: {reason}",
		Suggestions: []string{
			"check that `nbpool serve` is running and listening there",
			"pass --url or set NBPOOL_URL to the daemon's address",
		},
	}
	ErrTimeout = ErrorSpec{
		Name: "timeout", Status: 0,
		Message: "nbpool at {url} did not answer in time: {reason}",
		Suggestions: []string{
			"check the daemon's load and log",
			"raise the client timeout with --timeout",
		},
	}
)

// Endpoint errors.
var (
	ErrBindingNotFound = ErrorSpec{
		Name: "bindingNotFound", Status: 404,
		Message: "no binding named {name}",
		Suggestions: []string{
			"list bindings with `nbpool bindings list` or GET /api/bindings",
			"create it with `nbpool bindings create -f FILE`",
		},
	}
	ErrBindingExists = ErrorSpec{
		Name: "bindingExists", Status: 409,
		Message: "a binding named {name} already exists",
		Suggestions: []string{
			"change it with PUT /api/bindings/{name}",
			"or delete it first with `nbpool bindings delete {name}`",
		},
	}
	ErrBindingInUse = ErrorSpec{
		Name: "bindingInUse", Status: 409,
		Message: "binding {name} has {count} claimed launches",
		Suggestions: []string{
			"stop them first with `nbpool launches stop {name} ID`",
			"or delete with ?force=true to end them too",
		},
	}
	ErrInvalidName = ErrorSpec{
		Name: "invalidName", Status: 422,
		Message: "{name} is not a valid name",
		Suggestions: []string{
			"use lower-case letters, digits and '-', starting with a letter or digit, at most 63 characters",
		},
	}
	ErrInvalidBinding = ErrorSpec{
		Name: "invalidBinding", Status: 422,
		Message:     "invalid binding: {reason}",
		Suggestions: []string{"see the binding fields in GET /api/docs and config.example.yaml"},
	}
	ErrInvalidImage = ErrorSpec{
		Name: "invalidImage", Status: 422,
		Message: "image reference {image} does not parse: {reason}",
		Suggestions: []string{
			"write it like quay.io/jupyter/minimal-notebook:latest or nbpool-test/fakenb:latest",
		},
	}
	ErrInvalidPool = ErrorSpec{
		Name: "invalidPool", Status: 422,
		Message: "invalid pool size: {reason}",
		Suggestions: []string{
			"minPool and maxPool are 0 or more, minPool is at most maxPool when maxPool is set",
			"minPool is at most the daemon's capacity; see GET /api/stats",
		},
	}
	ErrLaunchNotFound = ErrorSpec{
		Name: "launchNotFound", Status: 404,
		Message: "no launch {id} of binding {binding}",
		Suggestions: []string{
			"list launches with `nbpool launches list {binding}`",
			"ended launches are kept only for the daemon's history retention",
		},
	}
	ErrImageUnavailable = ErrorSpec{
		Name: "imageUnavailable", Status: 503,
		Message: "image {image} is not on the Docker host and cannot be pulled: {reason}",
		Suggestions: []string{
			"build or load the image on the Docker host (docker build, docker load)",
			"or make its registry reachable from the Docker host, then retry",
		},
	}
	ErrSpawnFailed = ErrorSpec{
		Name: "spawnFailed", Status: 503,
		Message: "launch on binding {binding} failed: {reason}",
		Suggestions: []string{
			"check the pool with `nbpool pools get {binding}` (failures, lastError)",
			"see the daemon log for the container's error",
		},
	}
)

// Errors of the notebook proxy at /user/<id>/ (not catalog endpoints; the
// proxy answers browsers with a page and API clients with these).
var (
	ErrSessionNotFound = ErrorSpec{
		Name: "sessionNotFound", Status: 404,
		Message: "notebook session {id} has ended or never existed",
		Suggestions: []string{
			"launch a new session at {relaunch}",
		},
	}
	ErrSessionForbidden = ErrorSpec{
		Name: "sessionForbidden", Status: 403,
		Message: "this notebook session needs its token",
		Suggestions: []string{
			"open the URL you were given, with its ?token=",
			"or send 'Authorization: token <token>'",
		},
	}
	ErrSessionStarting = ErrorSpec{
		Name: "sessionStarting", Status: 503,
		Message: "notebook session {id} is still starting",
		Suggestions: []string{
			"retry in a few seconds (see the Retry-After header)",
			"or follow its progress at GET /api/binders/<binding>/{id}/events",
		},
	}
	ErrSessionUnreachable = ErrorSpec{
		Name: "sessionUnreachable", Status: 502, Statuses: []int{503},
		Message: "the notebook server of session {id} does not answer",
		Suggestions: []string{
			"wait a few seconds and reload",
			"if it persists, launch a new session at {relaunch}",
		},
	}
)
