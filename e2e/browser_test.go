package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon/daemontest"
)

// TestBrowserNotebook opens a launch URL in a real browser (Debian's
// chromium, headless): the tree page lists an uploaded notebook, the
// notebook opens and starts its kernel over the proxy (cookie session,
// XSRF, websocket), a cell typed on the keyboard runs 2**10 and shows
// 1024, Ctrl-S saves the output; a screenshot of the notebook is kept.
func TestBrowserNotebook(t *testing.T) {
	// One container, no refill after the claim: a new container's
	// interface makes chromium abort what it is loading (see browser.retry).
	cfg := jupyterConfig(t, 1)
	cfg.Bindings[0].Pool.Max = 1
	d := daemontest.Start(t, cfg)
	b := newBrowser(t)
	l := claimWarmJupyter(t, d, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := sessionFromURL(t, d.URL, l.URL)
	nb := testNotebook()
	nb["cells"] = []any{map[string]any{"cell_type": "code", "id": "first", "metadata": map[string]any{},
		"execution_count": nil, "source": []any{}, "outputs": []any{}}}
	const name, escaped = "Grüße e2e.ipynb", "Gr%C3%BC%C3%9Fe%20e2e.ipynb"
	s.must(ctx, t, http.StatusCreated, "PUT", "api/contents/"+escaped,
		map[string]any{"type": "notebook", "format": "json", "content": nb}, nil)

	link := chromedp.CSS(`#notebook_list a.item_link[href$="/notebooks/` + escaped + `"]`)
	if err := b.load(d.URL+l.URL, chromedp.WaitVisible(link), 30*time.Second); err != nil {
		b.fail("the tree page does not list "+name, err)
	}
	if st, loc := b.status(), b.location(); st != http.StatusOK || !strings.HasPrefix(loc, d.URL+s.base+"tree") {
		t.Errorf("the launch URL landed on %s (status %d), want the tree page %s", loc, st, s.base+"tree")
	}
	href, err := chromedp.Run(b.ctx, chromedp.AttributeValue(link, "href"))
	if err != nil {
		t.Fatal(err)
	}

	// The tree page opens notebooks in a new tab; open the link in this one.
	out := chromedp.CSS(`#notebook-container .code_cell .output_subarea.output_result`)
	err = b.retry("run a cell", func(ctx context.Context, _ bool) error {
		err := b.do(ctx, 60*time.Second,
			chromedp.Navigate(d.URL+href.Value),
			chromedp.WaitVisible(chromedp.CSS(`#kernel_indicator_icon.kernel_idle_icon`)))
		if err != nil {
			return err
		}
		return b.do(ctx, 30*time.Second,
			chromedp.Click(chromedp.CSS(`#notebook-container .code_cell .CodeMirror`)),
			chromedp.KeyEvent("2**10"),
			chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(chromedp.ModifierShift)),
			chromedp.WaitVisible(out))
	})
	if err != nil {
		b.fail("open the notebook and run 2**10", err)
	}
	text, err := chromedp.Run(b.ctx, chromedp.Text(out))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(text) != "1024" {
		t.Errorf("cell output %q, want 1024", text)
	}
	t.Logf("notebook screenshot: %s", b.screenshot("notebook.png"))

	// Ctrl-S saves through the proxy with the browser's cookie session (a
	// PUT with the XSRF token); pressed again every few seconds in case a
	// network change aborted it.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		if i%20 == 0 {
			if err := b.do(b.ctx, 10*time.Second, chromedp.KeyEvent("s", chromedp.KeyModifiers(chromedp.ModifierCtrl))); err != nil {
				t.Fatal(err)
			}
		}
		var model struct {
			Content struct {
				Cells []struct {
					Source  string `json:"source"`
					Outputs []struct {
						Data map[string]any `json:"data"`
					} `json:"outputs"`
				} `json:"cells"`
			} `json:"content"`
		}
		s.must(ctx, t, http.StatusOK, "GET", "api/contents/"+escaped+"?content=1", nil, &model)
		c := model.Content.Cells
		if len(c) > 0 && c[0].Source == "2**10" && len(c[0].Outputs) == 1 && c[0].Outputs[0].Data["text/plain"] == "1024" {
			break
		}
		if time.Now().After(deadline) {
			b.fail("save with Ctrl-S", fmt.Errorf("saved cells: %+v", c))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestBrowserSessionEnded lets a launch opened in the browser go idle
// until the culler ends it; its URL then shows the "session ended" page
// (404), whose relaunch link gets a new notebook.
func TestBrowserSessionEnded(t *testing.T) {
	// Two containers, no refill after the claim (see TestBrowserNotebook):
	// the second one is for the relaunch.
	cfg := jupyterConfig(t, 2)
	cfg.Bindings[0].Pool.Max = 2
	const idle = 4 * time.Second
	cfg.Bindings[0].Cull.IdleTimeout = api.Duration(idle)
	cfg.Cull.Period = api.Duration(500 * time.Millisecond)
	d := daemontest.Start(t, cfg)
	b := newBrowser(t)
	l := claimWarmJupyter(t, d, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tree := chromedp.WaitVisible(chromedp.CSS(`#notebook_list`))
	if err := b.load(d.URL+l.URL, tree, 30*time.Second); err != nil {
		b.fail("open the launch URL", err)
	}
	if err := b.do(b.ctx, 10*time.Second, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	left := time.Now()

	for {
		cur, err := d.Client.Launch(ctx, "jupyter", l.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cur.State == api.StateEnded {
			if cur.EndReason != "culled-idle" {
				t.Errorf("launch ended with reason %q, want culled-idle", cur.EndReason)
			}
			t.Logf("culled %v after the browser left (idle timeout %v)", cur.Ended.Sub(left).Round(time.Millisecond), idle)
			break
		}
		if time.Since(left) > idle+30*time.Second {
			t.Fatalf("launch not culled %v after the browser left: %+v", time.Since(left), cur)
		}
		time.Sleep(250 * time.Millisecond)
	}

	relaunch := chromedp.CSS(`a[href="/spawn/jupyter"]`)
	if err := b.load(d.URL+l.URL, chromedp.WaitVisible(relaunch), 30*time.Second); err != nil {
		b.fail("the ended launch's URL shows no relaunch link", err)
	}
	if st, text := b.status(), b.text(); st != http.StatusNotFound || !strings.Contains(text, "This notebook session has ended") {
		t.Errorf("after the cull %s answers %d:\n%s", l.URL, st, text)
	}
	t.Logf("session ended page: %s", b.screenshot("session-ended.png"))

	err := b.retry("relaunch", func(ctx context.Context, again bool) error {
		click := chromedp.Click(relaunch)
		if again && !strings.Contains(b.location(), l.ID) {
			click = chromedp.Reload() // of the new launch's page
		}
		return b.do(ctx, 60*time.Second, click, tree)
	})
	if err != nil {
		b.fail("the relaunch link did not land on a tree page", err)
	}
	if loc := b.location(); !strings.HasPrefix(loc, d.URL+"/user/") || strings.Contains(loc, l.ID) {
		t.Errorf("relaunch landed on %s, want a new /user/<id>/tree", loc)
	}
}
