package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// browser is a headless chromium tab driven by chromedp for one test. It
// keeps the page's console messages and network failures for the failure
// message.
type browser struct {
	t   *testing.T
	ctx context.Context // the tab; ends with the test (3 minutes at most)

	mu         sync.Mutex
	console    []string
	failed     []string
	pending    map[network.RequestID]*request
	netChanged int // requests aborted with ERR_NETWORK_CHANGED
}

type request struct {
	url    string
	sent   time.Time
	status int64
}

// newBrowser starts Debian's chromium, headless, without sandbox and
// background networking, for the length of the test. A missing chromium
// fails the test with the way to install it. Dialogs (the notebook's
// "leave page?") are accepted.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("Debian's chromium is not installed: run `make deps` (contrib/deps.sh) "+
			"or `apt-get install --no-install-recommends chromium` (%v)", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first action starts the browser and binds it to its context:
	// that one must live as long as the test, so no timeout here.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	b := &browser{t: t, pending: map[network.RequestID]*request{}}
	if err := chromedp.Listen(ctx, b.event); err != nil {
		t.Fatalf("listen to the browser: %v", err)
	}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.note(&b.console, "dialog: "+ev.Message)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			b.note(&b.console, m.String())
		}
	}()
	t.Cleanup(b.report)
	b.ctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel)
	return b
}

// event tracks requests; it runs on chromedp's read loop and must be fast.
func (b *browser) event(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		b.pending[ev.RequestID] = &request{url: ev.Request.URL, sent: time.Now()}
	case *network.EventResponseReceived:
		if r := b.pending[ev.RequestID]; r != nil {
			r.status = ev.Response.Status
		}
	case *network.EventLoadingFinished:
		delete(b.pending, ev.RequestID)
	case *network.EventLoadingFailed:
		if r := b.pending[ev.RequestID]; r != nil && !ev.Canceled {
			b.failed = append(b.failed, fmt.Sprintf("%s: %s after %v", r.url, ev.ErrorText,
				time.Since(r.sent).Round(time.Millisecond)))
		}
		if ev.ErrorText == "net::ERR_NETWORK_CHANGED" {
			b.netChanged++
		}
		delete(b.pending, ev.RequestID)
	}
}

func (b *browser) note(list *[]string, s string) {
	b.mu.Lock()
	*list = append(*list, s)
	b.mu.Unlock()
}

func (b *browser) networkChanges() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.netChanged
}

// report logs the console, the failed and the unfinished requests when the
// test failed.
func (b *browser) report() {
	if !b.t.Failed() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var open []string
	for _, r := range b.pending {
		if !strings.HasPrefix(r.url, "ws") {
			open = append(open, fmt.Sprintf("%s: status %d, sent %v ago", r.url, r.status, time.Since(r.sent).Round(time.Millisecond)))
		}
	}
	b.t.Logf("browser console:\n%s\nfailed requests:\n%s\nunfinished requests:\n%s",
		strings.Join(b.console, "\n"), strings.Join(b.failed, "\n"), strings.Join(open, "\n"))
}

// do runs steps in order in ctx (a context of the tab), each within d,
// and says which one failed.
func (b *browser) do(ctx context.Context, d time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	for i, step := range steps {
		sctx, cancel := context.WithTimeout(ctx, d)
		err := chromedp.Do(sctx, step)
		cancel()
		if err != nil {
			return fmt.Errorf("step %d of %d: %w", i+1, len(steps), err)
		}
	}
	return nil
}

// retry runs attempt, and again (up to three times in all) when chromium
// aborted requests with ERR_NETWORK_CHANGED meanwhile; attempt's context
// ends at once when that happens. Chromium aborts every request in flight,
// loopback ones too, when an IP address appears on the host or goes, as it
// does (IPv6 link-local) with the veth of each container: a pool refill,
// or any test on this engine, can break a page load.
func (b *browser) retry(what string, attempt func(ctx context.Context, again bool) error) error {
	var err error
	for i := range 3 {
		n := b.networkChanges()
		ctx, cancel := context.WithCancel(b.ctx)
		stop := make(chan struct{})
		go func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if b.networkChanges() != n {
						cancel()
						return
					}
				}
			}
		}()
		err = attempt(ctx, i > 0)
		close(stop)
		cancel()
		if err == nil || b.networkChanges() == n {
			return err
		}
		b.t.Logf("%s: chromium aborted requests with ERR_NETWORK_CHANGED (a container's interface came or went); again (%v)", what, err)
	}
	return err
}

// load opens url and waits within d for ready; see retry.
func (b *browser) load(url string, ready chromedp.Action[chromedp.Void], d time.Duration) error {
	return b.retry("open "+url, func(ctx context.Context, _ bool) error {
		return b.do(ctx, d, chromedp.Navigate(url), ready)
	})
}

// status is the HTTP status of the page's document.
func (b *browser) status() int {
	st, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`performance.getEntriesByType("navigation")[0].responseStatus`))
	if err != nil {
		b.t.Errorf("status of the page: %v", err)
	}
	return st
}

// location is the page's URL.
func (b *browser) location() string {
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		return "(no location: " + err.Error() + ")"
	}
	return loc
}

// text returns the text of the page, for messages.
func (b *browser) text() string {
	text, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return "(no page text: " + err.Error() + ")"
	}
	return text
}

// screenshot writes a PNG of the viewport to the test's artifact directory
// and returns its path.
func (b *browser) screenshot(name string) string {
	buf, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	p := filepath.Join(artifactDir(b.t), name)
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
	}
	return p
}

// fail ends the test with err, the page's location, text and a screenshot.
func (b *browser) fail(what string, err error) {
	b.t.Helper()
	shot := b.screenshot("failed.png")
	b.t.Fatalf("%s: %v\npage %s (screenshot %s):\n%s", what, err, b.location(), shot, b.text())
}

// artifactDir is $NBPOOL_TEST_ARTIFACTS/<test> when that is set, else the
// test's artifact directory (kept with go test -artifacts -outputdir DIR).
func artifactDir(t *testing.T) string {
	t.Helper()
	root := os.Getenv("NBPOOL_TEST_ARTIFACTS")
	if root == "" {
		return t.ArtifactDir()
	}
	dir := filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
