package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon"
	"github.com/nbpool/nbpool/daemon/daemontest"
)

// jupyterImage is built by `make images` (testdata/images/jupyter/build.sh).
const jupyterImage = "nbpool-test/jupyter:latest"

// requireJupyterImage fails the test (never skips it) when the engine has
// no Jupyter image, and logs what the image is.
func requireJupyterImage(t *testing.T) {
	t.Helper()
	daemontest.RequireEngine(t)
	out, err := exec.Command("docker", "image", "inspect", "--format",
		`{{.Id}} {{.Size}} {{.Created}} {{index .Config.Labels "org.nbpool.recipe"}}`, jupyterImage).CombinedOutput()
	if err != nil {
		t.Fatalf("image %s is missing: build it with `make images` or, as root, "+
			"testdata/images/jupyter/build.sh (1.5–4 min)\n(docker image inspect: %v: %s)",
			jupyterImage, err, bytes.TrimSpace(out))
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		t.Fatalf("docker image inspect %s: %q", jupyterImage, out)
	}
	var size int64
	fmt.Sscan(f[1], &size)
	t.Logf("image %s: %.12s, %d MiB, built %s", jupyterImage, strings.TrimPrefix(f[0], "sha256:"), size>>20, f[2])
	if want := jupyterRecipe(t); len(f) < 4 || f[3] != want {
		t.Logf("warning: the image is not built from this checkout's recipe (%.12s); `make images` rebuilds it", want)
	}
}

// jupyterRecipe is build.sh's recipe hash: sha256sum of sha256sum's
// lines for build.sh and packages.txt.
func jupyterRecipe(t *testing.T) string {
	t.Helper()
	var lines strings.Builder
	for _, name := range []string{"build.sh", "packages.txt"} {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "images", "jupyter", name))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&lines, "%x  %s\n", sha256.Sum256(b), name)
	}
	return fmt.Sprintf("%x", sha256.Sum256([]byte(lines.String())))
}

// jupyterConfig is a test daemon config whose only binding is `jupyter`
// from testdata/jupyter.yaml, with the given warm pool.
func jupyterConfig(t *testing.T, minPool int) daemon.Config {
	t.Helper()
	requireJupyterImage(t)
	file, err := daemon.LoadConfig("../testdata/jupyter.yaml", func(string) string { return "" })
	if err != nil {
		t.Fatalf("testdata/jupyter.yaml: %v", err)
	}
	var b api.Binding
	for _, fb := range file.Bindings {
		if fb.Name == "jupyter" {
			b = fb
		}
	}
	if b.Name == "" {
		t.Fatal("testdata/jupyter.yaml has no binding named jupyter")
	}
	b.Pool.Min = minPool
	b.Normalize()
	cfg := daemontest.Config(t, 0)
	cfg.Bindings = []api.Binding{b}
	cfg.DefaultBinding = "jupyter"
	cfg.Capacity = 6
	return cfg
}

// claimWarmJupyter waits until the jupyter pool has n warm containers and
// claims one of them (201).
func claimWarmJupyter(t *testing.T, d *daemontest.Daemon, n int) api.Launch {
	t.Helper()
	d.WaitPool(t, "jupyter", n, 90*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, status, err := d.Client.Spawn(ctx, "jupyter", api.SpawnRequest{})
	if err != nil || status != http.StatusCreated {
		t.Fatalf("spawn from a warm pool: status %d, %v; want 201", status, err)
	}
	return l
}

// session is one launch seen from outside: the daemon URL and the launch's
// base path and token, used through the proxy as a notebook client would.
type session struct {
	daemonURL string
	id        string
	base      string // "/user/<id>/"
	token     string
	http      *http.Client
}

// sessionFromURL parses a launch URL ("/user/<id>/tree?token=…").
func sessionFromURL(t *testing.T, daemonURL, launchURL string) *session {
	t.Helper()
	u, err := url.Parse(launchURL)
	if err != nil {
		t.Fatalf("launch URL %q: %v", launchURL, err)
	}
	rest, ok := strings.CutPrefix(u.Path, "/user/")
	id, _, _ := strings.Cut(rest, "/")
	tok := u.Query().Get("token")
	if !ok || id == "" || tok == "" {
		t.Fatalf("launch URL %q: want /user/<id>/…?token=…", launchURL)
	}
	return &session{daemonURL: daemonURL, id: id, base: "/user/" + id + "/", token: tok,
		http: &http.Client{Timeout: 60 * time.Second}}
}

// do sends a request to <base><path> (path already escaped, as a browser
// sends it) with the token in the Authorization header, and returns the
// status and body.
func (s *session) do(ctx context.Context, t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.daemonURL+s.base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.URL.EscapedPath(); got != s.base+strings.SplitN(path, "?", 2)[0] {
		t.Fatalf("request path would be sent as %q, not %q", got, s.base+path)
	}
	req.Header.Set("Authorization", "token "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, data
}

// must is do, expecting status want and decoding the body into out (if
// not nil).
func (s *session) must(ctx context.Context, t *testing.T, want int, method, path string, body, out any) {
	t.Helper()
	status, data := s.do(ctx, t, method, path, body)
	if status != want {
		t.Fatalf("%s %s%s: status %d, want %d: %.500s", method, s.base, path, status, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s%s: %v: %.500s", method, s.base, path, err, data)
		}
	}
}

// kernelMsg is a message of the Jupyter messaging protocol (v5.3) as the
// notebook server's websocket carries it: JSON, with the channel named.
type kernelMsg struct {
	Header       msgHeader      `json:"header"`
	ParentHeader msgHeader      `json:"parent_header"`
	Metadata     map[string]any `json:"metadata"`
	Content      map[string]any `json:"content"`
	Channel      string         `json:"channel"`
	Buffers      []any          `json:"buffers"`
}

type msgHeader struct {
	MsgID    string `json:"msg_id,omitempty"`
	Username string `json:"username,omitempty"`
	Session  string `json:"session,omitempty"`
	Date     string `json:"date,omitempty"`
	MsgType  string `json:"msg_type,omitempty"`
	Version  string `json:"version,omitempty"`
}

// execResult is what one execute_request brought back.
type execResult struct {
	Stdout  string         // the stream messages' text on stdout
	Reply   map[string]any // execute_reply content
	ReplyAt time.Time      // when the execute_reply arrived
}

// startKernel checks api/status and starts a kernel; it returns the
// kernel id.
func (s *session) startKernel(ctx context.Context, t *testing.T) string {
	t.Helper()
	var status map[string]any
	s.must(ctx, t, http.StatusOK, "GET", "api/status", nil, &status)
	if _, ok := status["started"]; !ok {
		t.Fatalf("api/status: no 'started' in %v", status)
	}
	var k struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	s.must(ctx, t, http.StatusCreated, "POST", "api/kernels", map[string]any{"name": "python3"}, &k)
	if k.ID == "" {
		t.Fatal("POST api/kernels: no kernel id")
	}
	return k.ID
}

// execute opens the kernel's channels websocket through the proxy, sends
// an execute_request for code on the shell channel and collects the
// iopub stream output and the shell execute_reply.
func (s *session) execute(ctx context.Context, t *testing.T, kernelID, code string) execResult {
	t.Helper()
	sessionID := newID()
	wsURL := "ws" + strings.TrimPrefix(s.daemonURL, "http") + s.base + "api/kernels/" + kernelID +
		"/channels?session_id=" + sessionID
	hdr := http.Header{"Authorization": {"token " + s.token}}
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, wsURL, hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("websocket %s: %v (status %d)", wsURL, err, status)
	}
	defer ws.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = ws.SetReadDeadline(deadline)
	}

	msgID := newID()
	req := kernelMsg{
		Header: msgHeader{MsgID: msgID, Username: "e2e", Session: sessionID,
			Date: time.Now().UTC().Format(time.RFC3339Nano), MsgType: "execute_request", Version: "5.3"},
		Metadata: map[string]any{},
		Content: map[string]any{"code": code, "silent": false, "store_history": true,
			"user_expressions": map[string]any{}, "allow_stdin": false, "stop_on_error": true},
		Channel: "shell",
		Buffers: []any{},
	}
	if err := ws.WriteJSON(req); err != nil {
		t.Fatalf("send execute_request: %v", err)
	}
	var res execResult
	idle := false
	for res.Reply == nil || !idle {
		var m kernelMsg
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatalf("reading kernel messages (stdout so far %q, reply %v): %v", res.Stdout, res.Reply, err)
		}
		if m.ParentHeader.MsgID != msgID {
			continue
		}
		switch {
		case m.Channel == "iopub" && m.Header.MsgType == "stream" && m.Content["name"] == "stdout":
			text, _ := m.Content["text"].(string)
			res.Stdout += text
		case m.Channel == "iopub" && m.Header.MsgType == "status" && m.Content["execution_state"] == "idle":
			idle = true // the last iopub message of the request
		case m.Channel == "shell" && m.Header.MsgType == "execute_reply":
			res.Reply, res.ReplyAt = m.Content, time.Now()
		}
	}
	return res
}

// checkPrint42 runs print(6*7) on a new kernel, checks the answer and
// returns when the execute_reply arrived.
func (s *session) checkPrint42(ctx context.Context, t *testing.T) time.Time {
	t.Helper()
	t0 := time.Now()
	kid := s.startKernel(ctx, t)
	started := time.Now()
	res := s.execute(ctx, t, kid, "print(6*7)")
	t.Logf("launch %s: api/status + POST api/kernels %v, websocket + execute_reply %v", s.id,
		started.Sub(t0).Round(time.Millisecond), res.ReplyAt.Sub(started).Round(time.Millisecond))
	if res.Stdout != "42\n" {
		t.Errorf("stream stdout = %q, want %q", res.Stdout, "42\n")
	}
	if res.Reply["status"] != "ok" {
		t.Errorf("execute_reply status = %v, want ok (%v)", res.Reply["status"], res.Reply)
	}
	return res.ReplyAt
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
