package cli_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon/daemontest"
)

// run runs the built nbpool binary and returns stdout, stderr and the exit
// code.
func run(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(daemontest.Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// The CLI, against a running daemon with the fake image: create a binding,
// spawn (a cold start followed to the end), set the pool, list and stop a
// launch, and a missing binding printed with suggestions.
func TestCLIAgainstDaemon(t *testing.T) {
	d := daemontest.Start(t, daemontest.Config(t, 0))
	env := []string{"NBPOOL_URL=" + d.URL, "NBPOOL_TOKEN=" + daemontest.AdminToken}
	must := func(args ...string) (string, string) {
		t.Helper()
		out, errOut, code := run(t, env, args...)
		if code != 0 {
			t.Fatalf("nbpool %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out, errOut
	}

	file := filepath.Join(t.TempDir(), "fake2.yaml")
	def := `name: fake2
image: nbpool-test/fakenb:latest
command: ["/fakenb", "--port={port}", "--base-url={base_url}", "--token={token}", "--ready-delay=300ms"]
pool: {min: 0}
`
	if err := os.WriteFile(file, []byte(def), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := must("bindings", "create", "-f", file)
	if !strings.Contains(out, "fake2") || !strings.Contains(out, "nbpool-test/fakenb:latest") {
		t.Fatalf("bindings create printed %q", out)
	}
	out, _ = must("bindings", "list")
	if !strings.Contains(out, "NAME") || !strings.Contains(out, "fake2") || !strings.Contains(out, "fake ") {
		t.Fatalf("bindings list printed %q", out)
	}

	// A cold start (pool 0), followed with a progress line to the end.
	out, errOut := must("spawn", "fake2", "--wait", "-o", "json")
	var l api.Launch
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("spawn -o json printed %q: %v", out, err)
	}
	if l.State != api.StateClaimed || !strings.HasPrefix(l.URL, "/user/"+l.ID+"/tree?token=") {
		t.Fatalf("spawn --wait did not end with a claimed launch: %+v", l)
	}
	if !strings.Contains(errOut, "Launching a notebook on fake2") || !strings.Contains(errOut, "100%") {
		t.Fatalf("spawn --wait showed no progress: %q", errOut)
	}

	out, _ = must("pools", "set", "fake2", "--min", "2")
	if !strings.Contains(out, "minPool:") || !strings.Contains(out, "2") {
		t.Fatalf("pools set printed %q", out)
	}
	d.WaitPool(t, "fake2", 2, 30*time.Second)

	out, _ = must("launches", "list", "fake2", "--state", "claimed")
	if !strings.Contains(out, l.ID) || !strings.Contains(out, "claimed") {
		t.Fatalf("launches list does not show %s: %q", l.ID, out)
	}
	out, _ = must("launches", "list") // every binding's launches
	if !strings.Contains(out, l.ID) || !strings.Contains(out, "fake2") {
		t.Fatalf("launches list without a binding does not show %s: %q", l.ID, out)
	}
	out, _ = must("launches", "stop", "fake2", l.ID, "-o", "json")
	var stopped api.Launch
	if err := json.Unmarshal([]byte(out), &stopped); err != nil || stopped.State != api.StateEnded || stopped.EndReason != api.EndStopped {
		t.Fatalf("launches stop printed %q (%v)", out, err)
	}

	// A missing binding: exit 1, the message and its suggestions.
	out, errOut, code := run(t, env, "bindings", "get", "nope")
	if code != 1 || !strings.Contains(errOut, `no binding named "nope"`) || !strings.Contains(errOut, "try: list bindings with `nbpool bindings list`") {
		t.Fatalf("bindings get nope: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// An unreachable daemon: the refused message with suggestions, exit 1.
func TestCLIRefused(t *testing.T) {
	_, errOut, code := run(t, []string{"NBPOOL_URL=http://127.0.0.1:1"}, "pools", "list")
	if code != 1 || !strings.Contains(errOut, "cannot connect to nbpool at") || !strings.Contains(errOut, "try:") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// A wrong command line exits 2.
func TestCLIUsage(t *testing.T) {
	if _, errOut, code := run(t, nil, "pools", "set", "fake", "--min", "lots"); code != 2 {
		t.Fatalf("want exit 2 for a bad flag, have %d: %s", code, errOut)
	}
}
