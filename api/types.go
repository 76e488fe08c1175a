package api

import (
	"time"
)

// Binding is a named environment template: the image, command and limits of
// the containers nbpool launches for it, and the size of its warm pool.
// Bindings are declared in the config file or created through the API and are
// kept in the store. The zero value is not valid; call Normalize then
// Validate.
type Binding struct {
	// Name is the binding's name, matching NamePattern.
	Name string `json:"name" yaml:"name"`
	// Image is the Docker image reference, e.g. "quay.io/jupyter/minimal-notebook".
	Image string `json:"image" yaml:"image"`
	// Command is the container's argv; "{base_url}", "{token}" and "{port}"
	// are filled in per container. Empty means the image's own CMD.
	Command []string `json:"command,omitempty" yaml:"command,omitempty"`
	// Port is the port the notebook server listens on inside the container.
	Port int `json:"port,omitempty" yaml:"port,omitempty"`
	// Env is extra environment for the container.
	Env map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
	// Redirect is the path under the launch's base URL that a visitor is sent
	// to after a launch, e.g. "tree" or "lab".
	Redirect string `json:"redirect,omitempty" yaml:"redirect,omitempty"`
	// Limits bounds each container's resources.
	Limits Limits `json:"limits" yaml:"limits,omitempty"`
	// Pool sizes the binding's warm pool.
	Pool PoolSpec `json:"pool" yaml:"pool,omitempty"`
	// Cull sets when a claimed launch is ended for idleness or age.
	Cull Cull `json:"cull" yaml:"cull,omitempty"`
	// Readiness says how nbpool knows a container is ready to hand out.
	Readiness Readiness `json:"readiness" yaml:"readiness,omitempty"`
	// CapAdd lists Linux capabilities kept; all others are dropped.
	CapAdd []string `json:"capAdd,omitempty" yaml:"capAdd,omitempty"`
	// Created and Updated are set by the server.
	Created time.Time `json:"created,omitzero" yaml:"-"`
	Updated time.Time `json:"updated,omitzero" yaml:"-"`
}

// Limits bounds the resources of one container. Zero means no limit.
type Limits struct {
	// Memory is a size such as "512m" or "2g".
	Memory string `json:"memory,omitempty" yaml:"memory,omitempty"`
	// CPUs is a number of CPUs, fractions allowed.
	CPUs float64 `json:"cpus,omitempty" yaml:"cpus,omitempty"`
	// Pids caps the number of processes.
	Pids int64 `json:"pids,omitempty" yaml:"pids,omitempty"`
}

// PoolSpec sizes a binding's pool: Min ready containers are kept available
// (in addition to claimed ones) and at most Max containers exist for the
// binding in all; Max 0 means only the daemon's capacity bounds it.
type PoolSpec struct {
	Min int `json:"min" yaml:"min"`
	Max int `json:"max,omitempty" yaml:"max,omitempty"`
}

// Cull says when a claimed launch is ended. Zero values fall back to the
// daemon's defaults.
type Cull struct {
	// IdleTimeout ends a launch with no proxied traffic for this long.
	IdleTimeout Duration `json:"idleTimeout,omitzero" yaml:"idleTimeout,omitempty"`
	// MaxAge ends a launch this long after it was claimed, busy or not.
	MaxAge Duration `json:"maxAge,omitzero" yaml:"maxAge,omitempty"`
}

// Readiness says how a new container is judged ready: an HTTP 200 from
// <base_url><Path> (with the launch token) within Timeout.
type Readiness struct {
	Path    string   `json:"path,omitempty" yaml:"path,omitempty"`
	Timeout Duration `json:"timeout,omitzero" yaml:"timeout,omitempty"`
}

// State is where a launch is in its life.
type State string

// The states of a launch, in order. A launch moves only forward.
const (
	StateWarming   State = "warming"   // container being created and probed
	StateAvailable State = "available" // ready, waiting in the pool
	StateClaimed   State = "claimed"   // handed out to a visitor
	StateEnded     State = "ended"     // container gone; kept as history
)

// Reasons a launch ended.
const (
	EndCulledIdle = "culled-idle"
	EndCulledAge  = "culled-age"
	EndStopped    = "stopped"
	EndDied       = "died"
	EndOOM        = "oom"
	EndLost       = "lost"
	EndFailed     = "failed"
	EndShrunk     = "shrunk"
	EndDeleted    = "binding-deleted"
	EndUpdated    = "binding-updated"
)

// Launch is one container for one visitor (a "binder" in the Binder API).
// Its id is also its path, /user/<id>/, and its token is fixed when the
// container is created, so a pooled container is handed out as is.
type Launch struct {
	ID      string `json:"id"`
	Binding string `json:"binding"`
	State   State  `json:"state"`
	// Phase is the latest progress step of a starting launch, e.g. "creating".
	Phase string `json:"phase,omitempty"`
	// Reserved marks a launch created or taken for a waiting visitor (a cold
	// start): when ready it is claimed at once instead of joining the pool.
	Reserved bool `json:"reserved,omitempty"`
	// Location is the launch's base path, "/user/<id>/".
	Location string `json:"location,omitempty"`
	// URL is the path a visitor opens: location, redirect and token.
	URL string `json:"url,omitempty"`
	// URI is this launch's resource in the API.
	URI string `json:"uri"`
	// Token is the launch's secret; shown only to the admin and the holder.
	Token string `json:"token,omitempty"`
	// ContainerID and Address (host:port on the launch network) locate the
	// container.
	ContainerID string `json:"containerId,omitempty"`
	Address     string `json:"address,omitempty"`
	// Template is a hash of the binding definition the container was made
	// from: a pooled container of an older definition is never handed out.
	Template string `json:"template,omitempty"`

	Created      time.Time `json:"created"`
	Ready        time.Time `json:"ready,omitzero"`
	Claimed      time.Time `json:"claimed,omitzero"`
	LastActivity time.Time `json:"lastActivity,omitzero"`
	Ended        time.Time `json:"ended,omitzero"`
	EndReason    string    `json:"endReason,omitempty"`
	Error        string    `json:"error,omitempty"`
}

// Live reports whether the launch has not ended.
func (l *Launch) Live() bool { return l.State != StateEnded }

// LaunchList is the answer to a list of launches.
type LaunchList struct {
	Items []Launch `json:"items"`
}

// BindingList is the answer to a list of bindings.
type BindingList struct {
	Items []Binding `json:"items"`
}

// SpawnRequest is the optional body of a launch request.
type SpawnRequest struct {
	// Path, if set, replaces the binding's redirect in the returned URL,
	// e.g. "notebooks/intro.ipynb".
	Path string `json:"path,omitempty"`
}

// Pool is the state of one binding's pool.
type Pool struct {
	Binding string `json:"binding"`
	// Running counts claimed containers, Available warm ones waiting,
	// Pending ones being created.
	Running   int `json:"running"`
	Available int `json:"available"`
	Pending   int `json:"pending"`
	MinPool   int `json:"minPool"`
	MaxPool   int `json:"maxPool"`
	// Failures counts containers that failed to become ready in a row;
	// LastError is the latest such failure and BackoffUntil the time before
	// which no new container is started.
	Failures     int       `json:"failures"`
	LastError    string    `json:"lastError,omitempty"`
	BackoffUntil time.Time `json:"backoffUntil,omitzero"`
}

// PoolList is the answer to a list of pools.
type PoolList struct {
	Items []Pool `json:"items"`
}

// PoolUpdate changes a pool's size at runtime. A nil field keeps its value.
type PoolUpdate struct {
	MinPool *int `json:"minPool,omitempty"`
	MaxPool *int `json:"maxPool,omitempty"`
}

// TmpnbSpawn is tmpnb's answer to POST /api/spawn/.
type TmpnbSpawn struct {
	URL string `json:"url"`
}

// TmpnbFull is tmpnb's answer when no container is left.
type TmpnbFull struct {
	Status string `json:"status"`
}

// TmpnbSpawnRequest is what tmpnb clients may send to POST /api/spawn/; it is
// accepted and ignored except for the binding nbpool adds.
type TmpnbSpawnRequest struct {
	ImageName string `json:"image_name,omitempty"`
	// Binding chooses the binding; the default binding when empty.
	Binding string `json:"binding,omitempty"`
}

// Stats is tmpnb's GET /api/stats answer.
type Stats struct {
	Available      int    `json:"available"`
	Capacity       int    `json:"capacity"`
	Version        string `json:"version"`
	ContainerImage string `json:"container_image"`
}

// Health is the daemon's health: Status is "ok" or "degraded".
type Health struct {
	Status string           `json:"status"`
	Checks map[string]Check `json:"checks"`
}

// Check is one item of Health.
type Check struct {
	OK      bool   `json:"ok"`
	Message string `json:"message,omitempty"`
}

// Version describes the running daemon.
type Version struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"goVersion"`
	API       string `json:"api"`
}

// Event is one progress message of a starting launch, sent as
// text/event-stream. It carries both BinderHub's phase/message and
// JupyterHub's progress/ready/failed/url so either kind of client can follow.
type Event struct {
	Phase    string `json:"phase"`
	Message  string `json:"message"`
	Progress int    `json:"progress"`
	Ready    bool   `json:"ready,omitempty"`
	Failed   bool   `json:"failed,omitempty"`
	ID       string `json:"id,omitempty"`
	URL      string `json:"url,omitempty"`
	Token    string `json:"token,omitempty"`
}

// ErrorBody is the JSON body of every error answer outside the
// tmpnb-compatible routes.
type ErrorBody struct {
	Error *Error `json:"error"`
}
