package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nbpool/nbpool/api"
)

// Config is the daemon's configuration: the YAML file (every key documented
// in config.example.yaml), NBPOOL_* environment variables over it, and flags
// over both.
type Config struct {
	// Instance names this daemon's containers (label nbpool.instance): two
	// daemons on one engine never touch each other's containers.
	Instance string `yaml:"instance"`
	Listen   string `yaml:"listen"`
	Store    string `yaml:"store"`
	Docker   Docker `yaml:"docker"`
	// Capacity bounds the live containers of all bindings together.
	Capacity int `yaml:"capacity"`
	// SpawnConcurrency bounds container creations in flight.
	SpawnConcurrency int `yaml:"spawnConcurrency"`
	// DefaultBinding serves the tmpnb-compatible /api/spawn/ and /api/stats.
	DefaultBinding string `yaml:"defaultBinding"`
	AdminToken     string `yaml:"adminToken"`
	AdminTokenFile string `yaml:"adminTokenFile"`
	// SpawnAuth is "open" (anyone may launch) or "admin".
	SpawnAuth  string       `yaml:"spawnAuth"`
	History    History      `yaml:"history"`
	Cull       CullDefaults `yaml:"cull"`
	Proxy      ProxyConfig  `yaml:"proxy"`
	CORS       CORS         `yaml:"cors"`
	OnShutdown string       `yaml:"onShutdown"`
	// ShutdownGrace bounds the HTTP drain at shutdown.
	ShutdownGrace api.Duration `yaml:"shutdownGrace"`
	// ActivityFlush is how often proxy activity is written to the store.
	ActivityFlush api.Duration  `yaml:"activityFlush"`
	Log           LogConfig     `yaml:"log"`
	Bindings      []api.Binding `yaml:"bindings"`

	// source is the file the config came from, for messages.
	source string
}

// Docker says how to reach the engine.
type Docker struct {
	// Host overrides DOCKER_HOST; empty uses the environment or the default
	// socket.
	Host    string       `yaml:"host"`
	Network string       `yaml:"network"`
	Timeout api.Duration `yaml:"timeout"`
}

// History keeps records of ended launches.
type History struct {
	Retention api.Duration `yaml:"retention"`
}

// CullDefaults apply to bindings that set no cull values of their own.
type CullDefaults struct {
	IdleTimeout api.Duration `yaml:"idleTimeout"`
	MaxAge      api.Duration `yaml:"maxAge"`
	Period      api.Duration `yaml:"period"`
}

// ProxyConfig tunes the notebook proxy.
type ProxyConfig struct {
	NotFoundRedirect    string `yaml:"notFoundRedirect"`
	TrustForwardedProto bool   `yaml:"trustForwardedProto"`
}

// CORS lets pages on other origins call the spawn API (Thebe-style clients).
type CORS struct {
	AllowOrigin string `yaml:"allowOrigin"`
}

// LogConfig sets logging.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"` // auto, console or json
}

// Defaults returns the configuration `nbpool serve` uses with no file.
func Defaults() Config {
	return Config{
		Instance:         "default",
		Listen:           "127.0.0.1:8000",
		Store:            "./nbpool.db",
		Docker:           Docker{Network: "nbpool", Timeout: api.Duration(30 * time.Second)},
		Capacity:         20,
		SpawnConcurrency: 4,
		DefaultBinding:   "jupyter",
		SpawnAuth:        "open",
		History:          History{Retention: api.Duration(7 * 24 * time.Hour)},
		Cull: CullDefaults{IdleTimeout: api.Duration(10 * time.Minute), MaxAge: api.Duration(4 * time.Hour),
			Period: api.Duration(30 * time.Second)},
		OnShutdown:    "keep",
		ShutdownGrace: api.Duration(30 * time.Second),
		ActivityFlush: api.Duration(5 * time.Second),
		Log:           LogConfig{Level: "info", Format: "auto"},
		Bindings: []api.Binding{{
			Name:  "jupyter",
			Image: "quay.io/jupyter/minimal-notebook:latest",
			Command: []string{"start-notebook.py", "--ServerApp.base_url={base_url}",
				"--IdentityProvider.token={token}", "--ServerApp.port={port}", "--ServerApp.ip=0.0.0.0",
				"--ServerApp.allow_remote_access=True", "--ServerApp.open_browser=False"},
			Pool: api.PoolSpec{Min: 2},
		}},
	}
}

// ConfigError is an invalid configuration; Key names the offending key.
type ConfigError struct {
	Source string
	Key    string
	Msg    string
}

func (e *ConfigError) Error() string {
	if e.Source != "" {
		return fmt.Sprintf("invalid config (%s): %s: %s", e.Source, e.Key, e.Msg)
	}
	return fmt.Sprintf("invalid config: %s: %s", e.Key, e.Msg)
}

// LoadConfig reads the file (if path is not empty) over the defaults, then
// the environment over it. A file that declares bindings replaces the
// default binding. It does not validate; call Validate after the flags.
func LoadConfig(path string, env func(string) string) (Config, error) {
	cfg := Defaults()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, &ConfigError{Key: "--config", Msg: err.Error()}
		}
		cfg.Bindings = nil
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, yamlError(path, err)
		}
		cfg.source = path
		// A file that declares bindings but no defaultBinding serves tmpnb's
		// routes from its first binding, not from a "jupyter" it may lack.
		if def := Defaults().DefaultBinding; len(cfg.Bindings) > 0 && cfg.DefaultBinding == def &&
			!slices.ContainsFunc(cfg.Bindings, func(b api.Binding) bool { return b.Name == def }) {
			cfg.DefaultBinding = cfg.Bindings[0].Name
		}
	}
	if err := cfg.applyEnv(env); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// yamlError turns a YAML decode error into a ConfigError naming the key.
func yamlError(path string, err error) error {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	key := "(file)"
	// "line 3: field foo not found in type daemon.Config"
	if i := strings.Index(msg, "field "); i >= 0 && strings.Contains(msg, "not found") {
		f := strings.Fields(msg[i+len("field "):])
		if len(f) > 0 {
			key = f[0]
			line := strings.TrimSuffix(msg[:i], ": ")
			msg = fmt.Sprintf("unknown key (%s); see config.example.yaml for the keys", line)
		}
	}
	return &ConfigError{Source: path, Key: key, Msg: msg}
}

// envVar maps an NBPOOL_* variable to the config key it sets.
type envVar struct {
	name, key string
	set       func(c *Config, v string) error
}

// envVars lists the environment variables the config reads.
func envVars() []envVar {
	return []envVar{
		{"NBPOOL_INSTANCE", "instance", func(c *Config, v string) error { c.Instance = v; return nil }},
		{"NBPOOL_LISTEN", "listen", func(c *Config, v string) error { c.Listen = v; return nil }},
		{"NBPOOL_STORE", "store", func(c *Config, v string) error { c.Store = v; return nil }},
		{"NBPOOL_DOCKER_NETWORK", "docker.network", func(c *Config, v string) error { c.Docker.Network = v; return nil }},
		{"NBPOOL_CAPACITY", "capacity", func(c *Config, v string) error { return setInt(&c.Capacity, v) }},
		{"NBPOOL_SPAWN_CONCURRENCY", "spawnConcurrency", func(c *Config, v string) error { return setInt(&c.SpawnConcurrency, v) }},
		{"NBPOOL_DEFAULT_BINDING", "defaultBinding", func(c *Config, v string) error { c.DefaultBinding = v; return nil }},
		{"NBPOOL_ADMIN_TOKEN", "adminToken", func(c *Config, v string) error { c.AdminToken = v; return nil }},
		{"NBPOOL_ADMIN_TOKEN_FILE", "adminTokenFile", func(c *Config, v string) error { c.AdminTokenFile = v; return nil }},
		{"NBPOOL_SPAWN_AUTH", "spawnAuth", func(c *Config, v string) error { c.SpawnAuth = v; return nil }},
		{"NBPOOL_ON_SHUTDOWN", "onShutdown", func(c *Config, v string) error { c.OnShutdown = v; return nil }},
		{"NBPOOL_LOG_LEVEL", "log.level", func(c *Config, v string) error { c.Log.Level = v; return nil }},
		{"NBPOOL_LOG_FORMAT", "log.format", func(c *Config, v string) error { c.Log.Format = v; return nil }},
		{"NBPOOL_CULL_IDLE_TIMEOUT", "cull.idleTimeout", func(c *Config, v string) error { return c.Cull.IdleTimeout.UnmarshalText([]byte(v)) }},
		{"NBPOOL_CULL_MAX_AGE", "cull.maxAge", func(c *Config, v string) error { return c.Cull.MaxAge.UnmarshalText([]byte(v)) }},
		{"NBPOOL_CULL_PERIOD", "cull.period", func(c *Config, v string) error { return c.Cull.Period.UnmarshalText([]byte(v)) }},
		{"NBPOOL_HISTORY_RETENTION", "history.retention", func(c *Config, v string) error { return c.History.Retention.UnmarshalText([]byte(v)) }},
		{"NBPOOL_SHUTDOWN_GRACE", "shutdownGrace", func(c *Config, v string) error { return c.ShutdownGrace.UnmarshalText([]byte(v)) }},
		{"NBPOOL_CORS_ALLOW_ORIGIN", "cors.allowOrigin", func(c *Config, v string) error { c.CORS.AllowOrigin = v; return nil }},
	}
}

func setInt(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", v)
	}
	*dst = n
	return nil
}

func (c *Config) applyEnv(env func(string) string) error {
	for _, ev := range envVars() {
		if v := env(ev.name); v != "" {
			if err := ev.set(c, v); err != nil {
				return &ConfigError{Key: ev.key + " (from " + ev.name + ")", Msg: err.Error()}
			}
		}
	}
	return nil
}

// Validate checks the config and normalizes its bindings. The error is a
// *ConfigError naming the first wrong key.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &ConfigError{Source: c.source, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case !api.ValidName(c.Instance):
		return bad("instance", "%q must be lower-case letters, digits and '-'", c.Instance)
	case c.Capacity < 1:
		return bad("capacity", "must be at least 1, not %d", c.Capacity)
	case c.SpawnConcurrency < 1:
		return bad("spawnConcurrency", "must be at least 1, not %d", c.SpawnConcurrency)
	case c.SpawnAuth != "open" && c.SpawnAuth != "admin":
		return bad("spawnAuth", "must be open or admin, not %q", c.SpawnAuth)
	case c.OnShutdown != "keep" && c.OnShutdown != "remove":
		return bad("onShutdown", "must be keep or remove, not %q", c.OnShutdown)
	case c.Store == "":
		return bad("store", "must name a file")
	case c.Docker.Network == "":
		return bad("docker.network", "must name a network")
	case c.Cull.Period <= 0:
		return bad("cull.period", "must be positive")
	case c.ActivityFlush <= 0:
		return bad("activityFlush", "must be positive")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("listen", "%q is not host:port (%v)", c.Listen, err)
	}
	if !map[string]bool{"auto": true, "console": true, "json": true}[c.Log.Format] {
		return bad("log.format", "must be auto, console or json, not %q", c.Log.Format)
	}
	seen := map[string]bool{}
	for i := range c.Bindings {
		b := &c.Bindings[i]
		b.Normalize()
		if err := b.Validate(); err != nil {
			return bad(fmt.Sprintf("bindings[%d] (%s)", i, b.Name), "%v", err)
		}
		if seen[b.Name] {
			return bad(fmt.Sprintf("bindings[%d].name", i), "%q is declared twice", b.Name)
		}
		seen[b.Name] = true
		if b.Pool.Min > c.Capacity {
			return bad(fmt.Sprintf("bindings[%d].pool.min", i), "%d is more than the capacity %d", b.Pool.Min, c.Capacity)
		}
	}
	return nil
}

// AdminSecret returns the admin token from adminToken or adminTokenFile.
// Empty means the admin endpoints are refused to everyone.
func (c *Config) AdminSecret() (string, error) {
	if c.AdminToken != "" {
		return c.AdminToken, nil
	}
	if c.AdminTokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.AdminTokenFile)
	if err != nil {
		return "", &ConfigError{Source: c.source, Key: "adminTokenFile", Msg: err.Error()}
	}
	return strings.TrimSpace(string(b)), nil
}
