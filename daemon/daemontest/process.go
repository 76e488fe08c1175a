package daemontest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds the nbpool binary once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nbpool-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "nbpool")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Process is a daemon running as its own process, from the built binary.
type Process struct {
	Config     daemon.Config
	ConfigPath string
	URL        string
	Client     *api.Client
	Cmd        *exec.Cmd
	stderr     *lockedWriter
	done       chan error
	exitErr    error
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WriteConfig writes cfg as a YAML file in a temp dir and returns its path.
func WriteConfig(t testing.TB, cfg daemon.Config) string {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "nbpool.yaml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// StartProcess runs `nbpool serve --config FILE` with cfg (a port ":0" is
// replaced by a free one) and waits until the daemon tells systemd's notify
// socket READY=1. The process is killed at the end of the test if still
// running; its containers are not removed (use Start's cleanup or
// RemoveInstance).
func StartProcess(t testing.TB, cfg daemon.Config, env ...string) *Process {
	t.Helper()
	RequireEngine(t)
	if strings.HasSuffix(cfg.Listen, ":0") {
		cfg.Listen = FreeAddr(t)
	}
	p := &Process{Config: cfg, ConfigPath: WriteConfig(t, cfg)}
	p.start(t, env)
	return p
}

// Restart starts the process again with the same config (after Kill or
// Term).
func (p *Process) Restart(t testing.TB, env ...string) {
	t.Helper()
	p.start(t, env)
}

func (p *Process) start(t testing.TB, env []string) {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "nbpool-notify-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sockPath := filepath.Join(sockDir, "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()

	p.stderr = &lockedWriter{w: &bytes.Buffer{}}
	p.Cmd = exec.Command(Binary(t), "serve", "--config", p.ConfigPath)
	p.Cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sockPath, "NBPOOL_LOG_FORMAT=json")
	p.Cmd.Env = append(p.Cmd.Env, env...)
	p.Cmd.Stderr = p.stderr
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan error, 1)
	go func() { p.done <- p.Cmd.Wait() }()
	t.Cleanup(func() { p.Kill() })

	ready := make(chan error, 1)
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				ready <- err
				return
			}
			if strings.Contains(string(buf[:n]), "READY=1") {
				ready <- nil
				return
			}
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("notify socket: %v", err)
		}
	case err := <-p.done:
		p.exitErr = err
		t.Fatalf("nbpool exited before READY=1: %v\n%s", err, p.Log())
	case <-time.After(90 * time.Second):
		t.Fatalf("nbpool sent no READY=1 within 90s\n%s", p.Log())
	}
	p.URL = "http://" + p.Config.Listen
	p.Client = api.NewClient(p.URL, p.Config.AdminToken)
}

// PID is the process id.
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Kill sends SIGKILL (a crash) and waits for the process to go.
func (p *Process) Kill() {
	if p.Cmd == nil || p.Cmd.ProcessState != nil {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	p.Wait(10 * time.Second)
}

// Term sends SIGTERM and returns the exit error after the process ends, or
// an error if it did not end within d.
func (p *Process) Term(d time.Duration) error {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	return p.Wait(d)
}

// Wait waits up to d for the process to exit.
func (p *Process) Wait(d time.Duration) error {
	select {
	case err := <-p.done:
		p.exitErr = err
		p.done <- err // keep it for later calls
		return err
	case <-time.After(d):
		return fmt.Errorf("nbpool did not exit within %s", d)
	}
}

// RSS returns the resident memory of the process in bytes.
func (p *Process) RSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", p.PID())
}

// Health asks the daemon's /api/health.
func (p *Process) Health(ctx context.Context) (api.Health, error) {
	return p.Client.Health(ctx)
}

// Log returns what the process wrote to stderr (its JSON log).
func (p *Process) Log() string { return p.stderr.String() }

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
