package daemon_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon/daemontest"
)

// Done when 5: SIGTERM while 50 websockets are open through the proxy and
// HTTP requests keep coming: the process exits 0 within the grace period;
// every request sent before the signal is answered in full (event streams
// that outlast the signal included), later ones are answered or refused,
// never reset; the websockets echo until the drain is over; the containers
// keep running (onShutdown: keep) and a restart brings the same launches
// back, websockets and all.
func TestShutdownDrainsWith50Websockets(t *testing.T) {
	const grace = 3 * time.Second
	cfg := daemontest.Config(t, 5)
	cfg.ShutdownGrace = api.Duration(grace)
	p := startProcess(t, cfg)
	waitPool(t, p.Client, "fake", 5, 30*time.Second)
	launches := make([]api.Launch, 5)
	for i := range launches {
		launches[i] = claimWarm(t, p.Client, "fake")
	}
	waitPool(t, p.Client, "fake", 5, 30*time.Second)
	before := daemontest.Containers(t, cfg.Instance)

	var conns []*echoConn
	for i := range 50 {
		c := dialEcho(t, p.URL, launches[i%len(launches)], fmt.Sprintf("k%d", i))
		conns = append(conns, c)
	}
	var termAt atomic.Int64 // unix nanos of the SIGTERM
	var echoesAfter atomic.Int64
	var wsWG sync.WaitGroup
	for _, c := range conns {
		wsWG.Go(func() { c.pingUntilClosed(&termAt, &echoesAfter) })
	}

	// Event streams that outlast the signal by a second, and a steady flow
	// of short requests to the API and through the proxy.
	var streams []chan streamResult
	for _, l := range launches {
		ch := make(chan streamResult, 1)
		go func() { ch <- readStream(p.URL + l.Location + "events?n=15&interval=100ms&token=" + l.Token) }()
		streams = append(streams, ch)
	}
	stopLoad := make(chan struct{})
	var load loadResult
	var loadWG sync.WaitGroup
	for i := range 4 {
		path := "/api/pools/fake"
		if i%2 == 1 {
			path = statusPath(launches[i])
		}
		loadWG.Go(func() { load.run(p.URL+path, &termAt, stopLoad) })
	}
	time.Sleep(500 * time.Millisecond)

	termAt.Store(time.Now().UnixNano())
	sent := time.Now()
	if err := p.Term(grace + 5*time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, p.Log())
	}
	exited := time.Since(sent)
	close(stopLoad)
	loadWG.Wait()
	wsWG.Wait()
	t.Logf("SIGTERM with %d websockets and %d event streams open: exit 0 after %s (grace %s); %d websocket echoes during the drain",
		len(conns), len(streams), exited.Round(time.Millisecond), grace, echoesAfter.Load())
	if exited > grace {
		t.Errorf("the process took %s to exit, more than the grace period %s", exited, grace)
	}
	for i, ch := range streams {
		if r := <-ch; r.err != nil || r.events != 15 {
			t.Errorf("event stream %d, in flight at the signal: %d of 15 events, %v", i, r.events, r.err)
		}
	}
	t.Logf("short requests: %d connected and answered before the signal, %d after, %d found nobody listening after it", load.okBefore.Load(), load.okAfter.Load(), load.refused.Load())
	for _, e := range load.errors() {
		t.Error(e)
	}
	for _, c := range conns {
		if c.echoes.Load() == 0 {
			t.Errorf("websocket %s never echoed", c.kid)
		}
	}

	// The containers outlive the daemon, and the restarted one serves them.
	after := daemontest.Containers(t, cfg.Instance)
	if !sameSet(ids(before), ids(after)) {
		t.Fatalf("containers changed over the shutdown: %d before, %d after", len(before), len(after))
	}
	for _, c := range after {
		if !c.Running {
			t.Errorf("container %s stopped with the daemon (%s)", c.Name, c.Status)
		}
	}
	p.Restart(t)
	for i, l := range launches {
		wantOpens(t, p.URL, l)
		c := dialEcho(t, p.URL, l, fmt.Sprintf("again%d", i))
		c.conn.Close()
	}
	waitPool(t, p.Client, "fake", 5, 30*time.Second)
	if err := p.Term(grace + 5*time.Second); err != nil {
		t.Fatalf("second SIGTERM: %v", err)
	}
}

// An event stream longer than the grace period does not hold the process:
// it exits at the end of the grace period, with status 0 (a stop, not a
// failure: systemd would mark the unit failed otherwise).
func TestShutdownCutsStreamsAtGrace(t *testing.T) {
	const grace = 2 * time.Second
	cfg := daemontest.Config(t, 1)
	cfg.ShutdownGrace = api.Duration(grace)
	p := startProcess(t, cfg)
	waitPool(t, p.Client, "fake", 1, 30*time.Second)
	l := claimWarm(t, p.Client, "fake")
	done := make(chan streamResult, 1)
	go func() { done <- readStream(p.URL + l.Location + "events?n=100&interval=100ms&token=" + l.Token) }()
	time.Sleep(300 * time.Millisecond)
	sent := time.Now()
	if err := p.Term(grace + 5*time.Second); err != nil {
		t.Errorf("exit after SIGTERM with a stream longer than the grace: %v\n%s", err, p.Log())
	}
	exited := time.Since(sent)
	r := <-done
	t.Logf("exit after %s (grace %s); the stream got %d of 100 events, then %v", exited.Round(time.Millisecond), grace, r.events, r.err)
	if exited < grace-200*time.Millisecond || exited > grace+time.Second {
		t.Errorf("want an exit at the end of the grace period %s, have %s", grace, exited)
	}
	if r.events >= 100 {
		t.Errorf("the stream was not cut")
	}
}

// echoConn is a websocket to fakenb's kernel channels through the proxy.
type echoConn struct {
	kid    string
	conn   *websocket.Conn
	echoes atomic.Int64
}

// dialEcho opens a kernel channel of l and checks one echo.
func dialEcho(t *testing.T, base string, l api.Launch, kid string) *echoConn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(base, "http") + l.Location + "api/kernels/" + kid + "/channels?token=" + l.Token
	conn, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("websocket %s: %d %v", u, status, err)
	}
	c := &echoConn{kid: kid, conn: conn}
	if err := c.echo("hello " + kid); err != nil {
		t.Fatalf("websocket %s: %v", kid, err)
	}
	return c
}

func (c *echoConn) echo(msg string) error {
	deadline := time.Now().Add(5 * time.Second)
	_ = c.conn.SetWriteDeadline(deadline)
	_ = c.conn.SetReadDeadline(deadline)
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		return err
	}
	_, got, err := c.conn.ReadMessage()
	if err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	c.echoes.Add(1)
	return nil
}

// pingUntilClosed echoes a message every 100ms until the connection breaks,
// counting the echoes after the SIGTERM.
func (c *echoConn) pingUntilClosed(termAt *atomic.Int64, after *atomic.Int64) {
	defer c.conn.Close()
	for i := 0; ; i++ {
		if err := c.echo(fmt.Sprintf("%s-%d", c.kid, i)); err != nil {
			return
		}
		if termAt.Load() != 0 {
			after.Add(1)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type streamResult struct {
	events int
	err    error
}

// readStream reads a text/event-stream to its end and counts its events.
func readStream(url string) streamResult {
	resp, err := http.Get(url)
	if err != nil {
		return streamResult{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return streamResult{err: fmt.Errorf("status %d", resp.StatusCode)}
	}
	var r streamResult
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data:") {
			r.events++
		}
	}
	r.err = sc.Err()
	return r
}

// loadResult counts the outcomes of short requests around a SIGTERM.
type loadResult struct {
	okBefore, okAfter, refused atomic.Int64
	mu                         sync.Mutex
	errs                       []string
}

// run GETs url on fresh connections until stop. A request whose connection
// was made before the signal must be answered 200. One whose connection was
// made after it (or not at all) must be answered 200 too, or find nobody
// listening: refused, or reset when the listener closed with the connection
// still in the kernel's accept queue, before nbpool could accept it. An EOF
// (a request read and dropped) or any other answer is a failure.
func (r *loadResult) run(url string, termAt *atomic.Int64, stop <-chan struct{}) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for {
		select {
		case <-stop:
			return
		default:
		}
		var connected atomic.Int64
		trace := &httptrace.ClientTrace{ConnectDone: func(_, _ string, err error) {
			if err == nil {
				connected.Store(time.Now().UnixNano())
			}
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, url, nil)
		code := 0
		resp, err := client.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			code = resp.StatusCode
		}
		term := termAt.Load()
		before := connected.Load() != 0 && (term == 0 || connected.Load() < term)
		switch {
		case err == nil && code == http.StatusOK && before:
			r.okBefore.Add(1)
		case err == nil && code == http.StatusOK:
			r.okAfter.Add(1)
		case !before && term != 0 && (errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)):
			r.refused.Add(1)
			time.Sleep(20 * time.Millisecond)
		default:
			r.mu.Lock()
			r.errs = append(r.errs, fmt.Sprintf("GET %s (connected %s the signal): %d %v",
				url, map[bool]string{true: "before", false: "after"}[before], code, err))
			r.mu.Unlock()
		}
	}
}

func (r *loadResult) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errs
}
