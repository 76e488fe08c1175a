package daemon_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbpool/nbpool/daemon/daemontest"
)

// READY=1 reaches NOTIFY_SOCKET only once the listener answers.
func TestNotifyReadyAfterListener(t *testing.T) {
	cfg := daemontest.Config(t, 0)
	p := startProcess(t, cfg)
	// startProcess returned on READY=1; the very next request must answer.
	resp, err := http.Get(p.URL + "/api/health")
	if err != nil {
		t.Fatalf("READY=1 was sent but the listener does not answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health after READY=1: %d", resp.StatusCode)
	}
	if err := p.Term(10 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.Log())
	}
}

// The unit file passes systemd-analyze verify.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is missing: install the systemd package (make deps does)")
	}
	unit, err := os.ReadFile("../contrib/systemd/nbpool.service")
	if err != nil {
		t.Fatal(err)
	}
	bin := daemontest.Binary(t)
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/nbpool", bin)
	p := filepath.Join(t.TempDir(), "nbpool.service")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", p).CombinedOutput()
	if err != nil || strings.Contains(string(out), "nbpool.service") {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{"Type=notify", "Restart=on-failure", "SupplementaryGroups=docker", "NoNewPrivileges=yes"} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %s", want)
		}
	}
}

// An invalid config exits 2 with one line that names the key.
func TestInvalidConfigExits2(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(p, []byte("capacity: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(context.Background(), daemontest.Binary(t), "serve", "--config", p)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("want exit 2, have %v: %s", err, out)
	}
	msg := strings.TrimSpace(string(out))
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "capacity") {
		t.Fatalf("want one line naming capacity, have %q", msg)
	}
}
