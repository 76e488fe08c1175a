package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nbpool.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func noEnv(string) string { return "" }

func TestDefaultsValidate(t *testing.T) {
	cfg, err := LoadConfig("", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if cfg.Listen != "127.0.0.1:8000" || cfg.Store != "./nbpool.db" || cfg.Instance != "default" {
		t.Fatalf("defaults differ from DESIGN.md: %+v", cfg)
	}
	if len(cfg.Bindings) != 1 || cfg.Bindings[0].Name != "jupyter" {
		t.Fatalf("want the one default binding jupyter, have %+v", cfg.Bindings)
	}
}

func TestExampleConfigLoadsAndDocumentsEveryKey(t *testing.T) {
	cfg, err := LoadConfig("../config.example.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config.example.yaml does not validate: %v", err)
	}
	raw, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range yamlKeys(reflect.TypeOf(Config{})) {
		if !strings.Contains(string(raw), key+":") {
			t.Errorf("config.example.yaml does not document %q", key)
		}
	}
}

// yamlKeys lists the YAML keys of a struct type, nested ones included.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		keys = append(keys, tag)
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Time{}) {
			keys = append(keys, yamlKeys(ft)...)
		}
	}
	return keys
}

func TestEnvOverFileAndFileOverDefaults(t *testing.T) {
	p := writeFile(t, "instance: fromfile\ncapacity: 7\nlisten: 127.0.0.1:9000\nbindings: []\n")
	env := map[string]string{"NBPOOL_CAPACITY": "9", "NBPOOL_INSTANCE": "fromenv"}
	cfg, err := LoadConfig(p, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Capacity != 9 || cfg.Instance != "fromenv" || cfg.Listen != "127.0.0.1:9000" {
		t.Fatalf("precedence wrong: %+v", cfg)
	}
	if len(cfg.Bindings) != 0 {
		t.Fatalf("a file that declares bindings replaces the default: %+v", cfg.Bindings)
	}
}

func TestInvalidConfigNamesTheKey(t *testing.T) {
	cases := []struct {
		name, file string
		env        map[string]string
		key        string
	}{
		{"unknown key", "capacty: 3\n", nil, "capacty"},
		{"wrong type", "capacity: lots\n", nil, "(file)"},
		{"zero capacity", "capacity: 0\n", nil, "capacity"},
		{"bad instance", "instance: Not_Valid\n", nil, "instance"},
		{"bad listen", "listen: nowhere\n", nil, "listen"},
		{"bad spawnAuth", "spawnAuth: maybe\n", nil, "spawnAuth"},
		{"bad onShutdown", "onShutdown: explode\n", nil, "onShutdown"},
		{"bad duration", "cull: {idleTimeout: soon}\n", nil, "(file)"},
		{"bad binding name", "bindings: [{name: Bad, image: x}]\n", nil, "bindings[0] (Bad)"},
		{"bad binding image", "bindings: [{name: a, image: 'UP::x'}]\n", nil, "bindings[0] (a)"},
		{"duplicate binding", "bindings: [{name: a, image: x}, {name: a, image: y}]\n", nil, "bindings[1].name"},
		{"pool over capacity", "capacity: 2\nbindings: [{name: a, image: x, pool: {min: 3}}]\n", nil, "bindings[0].pool.min"},
		{"bad env number", "", map[string]string{"NBPOOL_CAPACITY": "many"}, "capacity (from NBPOOL_CAPACITY)"},
		{"bad env duration", "", map[string]string{"NBPOOL_CULL_MAX_AGE": "forever"}, "cull.maxAge (from NBPOOL_CULL_MAX_AGE)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = writeFile(t, tc.file)
			}
			cfg, err := LoadConfig(path, func(k string) string { return tc.env[k] })
			if err == nil {
				err = cfg.Validate()
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want a ConfigError, have %v", err)
			}
			if ce.Key != tc.key {
				t.Fatalf("want key %q, have %q in %q", tc.key, ce.Key, err)
			}
			if strings.Count(err.Error(), "\n") > 0 {
				t.Fatalf("the message is not one line: %q", err)
			}
		})
	}
}

func TestAdminTokenFromFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.AdminTokenFile = p
	got, err := cfg.AdminSecret()
	if err != nil || got != "s3cret" {
		t.Fatalf("want s3cret from the file, have %q %v", got, err)
	}
}

func TestDefaultBindingFollowsTheFile(t *testing.T) {
	p := writeFile(t, "bindings: [{name: fake, image: x}]\n")
	cfg, err := LoadConfig(p, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DefaultBinding != "fake" {
		t.Fatalf("a file with only fake: defaultBinding %q, want fake", cfg.DefaultBinding)
	}
	p = writeFile(t, "defaultBinding: other\nbindings: [{name: fake, image: x}]\n")
	if cfg, _ = LoadConfig(p, noEnv); cfg.DefaultBinding != "other" {
		t.Fatalf("an explicit defaultBinding was replaced: %q", cfg.DefaultBinding)
	}
}
