package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon/daemontest"
)

// TestJupyterKernel spawns real Jupyter notebook servers and runs
// print(6*7) on a kernel through the proxy (api/status, POST api/kernels,
// the channels websocket in the messaging protocol), cold and warm. It
// logs the time from POST /api/spawn/ to the first execute_reply for:
// a cold start through the tmpnb route (which waits for the container), a
// cold start through POST /api/binders/jupyter (202, then the event
// stream), and a claim from a warm pool, without and with a refill
// starting next to it.
func TestJupyterKernel(t *testing.T) {
	cfg := jupyterConfig(t, 0)
	d := daemontest.Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	cold := spawnToReply(ctx, t, d)

	t0 := time.Now()
	l, status, err := d.Client.Spawn(ctx, "jupyter", api.SpawnRequest{})
	if err != nil || status != http.StatusAccepted {
		t.Fatalf("POST /api/binders/jupyter with an empty pool: status %d, %v; want 202", status, err)
	}
	var ready api.Event
	err = d.Client.Events(ctx, "jupyter", l.ID, func(ev api.Event) error {
		ready = ev
		return nil
	})
	if err != nil || !ready.Ready {
		t.Fatalf("events of cold launch %s: last %+v, %v", l.ID, ready, err)
	}
	readyAt := time.Now()
	s := sessionFromURL(t, d.URL, ready.URL)
	cold202 := s.checkPrint42(ctx, t).Sub(t0)
	t.Logf("cold start via POST /api/binders/jupyter: 202 → ready event %v, → execute_reply %v",
		readyAt.Sub(t0).Round(time.Millisecond), cold202.Round(time.Millisecond))

	// Warm: one container waits in the pool and the binding's max is
	// reached once it is claimed, so no refill competes with the kernel.
	one, three, five := 1, 3, 5
	if _, err := d.Client.SetPool(ctx, "jupyter", api.PoolUpdate{MinPool: &one, MaxPool: &three}); err != nil {
		t.Fatal(err)
	}
	d.WaitPool(t, "jupyter", 1, 90*time.Second)
	warm := spawnToReply(ctx, t, d)

	// Warm again, but the claim starts a refill: a new notebook server
	// starts next to the kernel, as it does in service.
	if _, err := d.Client.SetPool(ctx, "jupyter", api.PoolUpdate{MaxPool: &five}); err != nil {
		t.Fatal(err)
	}
	d.WaitPool(t, "jupyter", 1, 90*time.Second)
	warmRefill := spawnToReply(ctx, t, d)

	t.Logf("POST /api/spawn/ → first execute_reply (kernel start included): warm %v (with a refill starting next to it %v), "+
		"cold %v (cold via 202 + events %v)", warm.Round(time.Millisecond), warmRefill.Round(time.Millisecond),
		cold.Round(time.Millisecond), cold202.Round(time.Millisecond))
	if warm >= cold {
		t.Errorf("a warm spawn (%v) is not faster than a cold one (%v)", warm, cold)
	}
}

// spawnToReply takes a notebook with POST /api/spawn/ and runs print(6*7)
// on a new kernel; it returns the time from the POST to the execute_reply.
func spawnToReply(ctx context.Context, t *testing.T, d *daemontest.Daemon) time.Duration {
	t.Helper()
	t0 := time.Now()
	sp, err := d.Client.TmpnbSpawn(ctx, api.TmpnbSpawnRequest{})
	if err != nil {
		t.Fatalf("POST /api/spawn/: %v", err)
	}
	spawned := time.Now()
	s := sessionFromURL(t, d.URL, sp.URL)
	total := s.checkPrint42(ctx, t).Sub(t0)
	t.Logf("launch %s: POST /api/spawn/ answered in %v, execute_reply after %v",
		s.id, spawned.Sub(t0).Round(time.Millisecond), total.Round(time.Millisecond))
	return total
}

// TestJupyterContents stores, reads, lists, renames and deletes a notebook
// with a space and a non-ASCII letter in its path through the proxy, the
// path escaped as a browser escapes it (%20, %C3%BC).
func TestJupyterContents(t *testing.T) {
	d := daemontest.Start(t, jupyterConfig(t, 1))
	l := claimWarmJupyter(t, d, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := sessionFromURL(t, d.URL, l.URL)

	type entry struct {
		Name    string          `json:"name"`
		Path    string          `json:"path"`
		Type    string          `json:"type"`
		Format  string          `json:"format"`
		Content json.RawMessage `json:"content"`
	}
	var dir entry
	s.must(ctx, t, http.StatusCreated, "PUT", "api/contents/foo%20bar", map[string]any{"type": "directory"}, &dir)
	if dir.Path != "foo bar" || dir.Type != "directory" {
		t.Fatalf("PUT directory: got %+v", dir)
	}

	nb := testNotebook()
	var put entry
	s.must(ctx, t, http.StatusCreated, "PUT", "api/contents/foo%20bar/%C3%BC.ipynb",
		map[string]any{"type": "notebook", "format": "json", "content": nb}, &put)
	if put.Path != "foo bar/ü.ipynb" || put.Name != "ü.ipynb" || put.Type != "notebook" {
		t.Fatalf("PUT notebook: got %+v", put)
	}

	// The file as stored: the notebook exactly as sent.
	var raw entry
	s.must(ctx, t, http.StatusOK, "GET", "api/contents/foo%20bar/%C3%BC.ipynb?type=file&format=text&content=1", nil, &raw)
	var text string
	var stored map[string]any
	if err := json.Unmarshal(raw.Content, &text); err != nil {
		t.Fatalf("GET notebook as text: %v", err)
	}
	if err := json.Unmarshal([]byte(text), &stored); err != nil {
		t.Fatalf("stored notebook is not JSON: %v\n%s", err, text)
	}
	want := roundTrip(t, nb)
	if !reflect.DeepEqual(stored, want) {
		t.Errorf("stored notebook differs:\n got %v\nwant %v", stored, want)
	}

	// The notebook model: the same cells, with the server's transient
	// "trusted" flag (the notebook was signed when saved) left out.
	var got entry
	s.must(ctx, t, http.StatusOK, "GET", "api/contents/foo%20bar/%C3%BC.ipynb?content=1", nil, &got)
	var back map[string]any
	if err := json.Unmarshal(got.Content, &back); err != nil {
		t.Fatalf("GET notebook content: %v", err)
	}
	cells, _ := back["cells"].([]any)
	for _, c := range cells {
		c := c.(map[string]any)
		if md, ok := c["metadata"].(map[string]any); ok {
			if md["trusted"] != true && c["cell_type"] == "code" {
				t.Errorf("code cell %v not trusted: the server did not sign the saved notebook", c)
			}
			delete(md, "trusted")
		}
	}
	if !reflect.DeepEqual(joinLines(back["cells"]), joinLines(want["cells"])) {
		t.Errorf("cells differ:\n got %v\nwant %v", back["cells"], want["cells"])
	}

	names := func() []string {
		var listing struct {
			Type    string  `json:"type"`
			Content []entry `json:"content"`
		}
		s.must(ctx, t, http.StatusOK, "GET", "api/contents/foo%20bar", nil, &listing)
		if listing.Type != "directory" {
			t.Fatalf("GET foo bar: type %q", listing.Type)
		}
		var n []string
		for _, e := range listing.Content {
			n = append(n, e.Path)
		}
		return n
	}
	if n := names(); !reflect.DeepEqual(n, []string{"foo bar/ü.ipynb"}) {
		t.Errorf("listing of foo bar: %q, want [foo bar/ü.ipynb]", n)
	}

	var moved entry
	s.must(ctx, t, http.StatusOK, "PATCH", "api/contents/foo%20bar/%C3%BC.ipynb",
		map[string]any{"path": "foo bar/Grüße 2.ipynb"}, &moved)
	if moved.Path != "foo bar/Grüße 2.ipynb" {
		t.Errorf("PATCH: path %q, want %q", moved.Path, "foo bar/Grüße 2.ipynb")
	}
	if st, _ := s.do(ctx, t, "GET", "api/contents/foo%20bar/%C3%BC.ipynb", nil); st != http.StatusNotFound {
		t.Errorf("GET old name after rename: status %d, want 404", st)
	}
	if n := names(); !reflect.DeepEqual(n, []string{"foo bar/Grüße 2.ipynb"}) {
		t.Errorf("listing after rename: %q", n)
	}

	s.must(ctx, t, http.StatusNoContent, "DELETE", "api/contents/foo%20bar/Gr%C3%BC%C3%9Fe%202.ipynb", nil, nil)
	if n := names(); len(n) != 0 {
		t.Errorf("listing after delete: %q, want empty", n)
	}
	s.must(ctx, t, http.StatusNoContent, "DELETE", "api/contents/foo%20bar", nil, nil)
	if st, _ := s.do(ctx, t, "GET", "api/contents/foo%20bar", nil); st != http.StatusNotFound {
		t.Errorf("GET foo bar after delete: status %d, want 404", st)
	}
}

// testNotebook is a valid nbformat 4.5 notebook with a markdown cell, an
// executed code cell and an empty one, with multiline strings split into
// lines as nbformat writes them to disk.
func testNotebook() map[string]any {
	return map[string]any{
		"nbformat":       4,
		"nbformat_minor": 5,
		"metadata": map[string]any{
			"kernelspec":    map[string]any{"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
			"language_info": map[string]any{"name": "python"},
		},
		"cells": []any{
			map[string]any{"cell_type": "markdown", "id": "intro", "metadata": map[string]any{},
				"source": []any{"# Grüße\n", "\n", "A notebook at `foo bar/ü.ipynb`."}},
			map[string]any{"cell_type": "code", "id": "answer", "metadata": map[string]any{"tags": []any{"e2e"}},
				"execution_count": 1, "source": []any{"print(6*7)"},
				"outputs": []any{map[string]any{"output_type": "stream", "name": "stdout", "text": []any{"42\n"}}}},
			map[string]any{"cell_type": "code", "id": "empty", "metadata": map[string]any{},
				"execution_count": nil, "source": []any{}, "outputs": []any{}},
		},
	}
}

// joinLines returns v (decoded JSON) with every "source" and "text" list
// of lines joined into one string, as the notebook server's model has them.
func joinLines(v any) any {
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = joinLines(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			if lines, ok := e.([]any); ok && (k == "source" || k == "text") {
				var b strings.Builder
				for _, l := range lines {
					s, _ := l.(string)
					b.WriteString(s)
				}
				out[k] = b.String()
				continue
			}
			out[k] = joinLines(e)
		}
		return out
	}
	return v
}

// roundTrip returns v as JSON decodes it (numbers as float64).
func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
