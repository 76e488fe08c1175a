package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon/daemontest"
)

const (
	// pxTransfer is what TestProxyLargeTransfers moves each way.
	pxTransfer = 1 << 30
	// pxRSSBudget is how far the daemon's RSS may rise over idle meanwhile.
	pxRSSBudget = 100 << 20
)

// Done when 2: a 1 GiB upload and a 1 GiB download pass through the daemon
// (the built binary, as its own process) intact, while its resident memory,
// sampled every 50 ms, stays less than 100 MB above idle: nothing on the
// way buffers a body. The client side stays cheap under -race: payloads are
// windows of one buffer, and hashing and comparing run in assembly.
func TestProxyLargeTransfers(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 2 GiB; skipped with -short")
	}
	daemontest.RequireEngine(t)
	cfg := pxConfig(t, 1, false)
	t.Cleanup(func() { daemontest.RemoveInstance(t, cfg.Instance) }) // after the kill below
	p := daemontest.StartProcess(t, cfg)
	pxWaitPool(t, p.Client, 1)
	l := pxSpawn(t, p.Client)
	base := p.URL + l.Location
	client := &http.Client{}
	auth := "token " + l.Token

	// Warm up connections, buffers and code pages both ways, then idle.
	for range 3 {
		pxDownload(t, client, base, auth, 8<<20)
		pxUpload(t, client, base, auth, 8<<20)
	}
	time.Sleep(time.Second)
	idle, err := p.RSS()
	if err != nil {
		t.Fatal(err)
	}

	for _, dir := range []string{"upload", "download"} {
		t.Run(dir, func(t *testing.T) {
			stop := pxWatchRSS(p)
			start := time.Now()
			if dir == "upload" {
				pxUpload(t, client, base, auth, pxTransfer)
			} else {
				pxDownload(t, client, base, auth, pxTransfer)
			}
			took := time.Since(start)
			peak := stop()
			if peak == 0 {
				t.Fatal("no RSS sample of the daemon")
			}
			t.Logf("%s of 1 GiB in %v (%.0f MB/s); daemon RSS idle %.1f MB, peak %.1f MB, growth %.1f MB",
				dir, took.Round(time.Millisecond), pxTransfer/took.Seconds()/1e6,
				float64(idle)/1e6, float64(peak)/1e6, float64(peak-idle)/1e6)
			if peak-idle > pxRSSBudget {
				t.Errorf("%s: daemon RSS grew by %.1f MB, budget %d MiB", dir, float64(peak-idle)/1e6, pxRSSBudget>>20)
			}
		})
	}
}

// pxWaitPool waits until the fake pool has n available containers.
func pxWaitPool(t testing.TB, c *api.Client, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		p, err := c.GetPool(context.Background(), pxBinding)
		if err == nil && p.Available == n && p.Pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool: want %d available, have %+v (%v)", n, p, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pxWatchRSS samples the daemon's RSS every 50 ms until stop, which
// returns the peak.
func pxWatchRSS(p *daemontest.Process) (stop func() int64) {
	var peak atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, err := p.RSS(); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() int64 { close(done); wg.Wait(); return peak.Load() }
}

// pxBlock is what uploads repeat: random bytes of a length that is no
// power of two, so repeats never line up with buffer boundaries.
var pxBlock = sync.OnceValue(func() []byte {
	b := make([]byte, 1<<20+13)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
})

// pxCycle reads pxBlock over and over, n bytes in all.
type pxCycle struct {
	off, n int64
}

func (c *pxCycle) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, io.EOF
	}
	b := pxBlock()
	k := copy(p[:min(int64(len(p)), c.n)], b[c.off%int64(len(b)):])
	c.off += int64(k)
	c.n -= int64(k)
	return k, nil
}

// pxUpload POSTs n bytes to fakenb's upload and checks size and SHA-256.
func pxUpload(t testing.TB, client *http.Client, base, auth string, n int64) {
	t.Helper()
	sum := sha256.New()
	req, _ := http.NewRequest("POST", base+"upload", io.TeeReader(&pxCycle{n: n}, sum))
	req.ContentLength = n
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	defer res.Body.Close()
	var got struct {
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	}
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil || res.StatusCode != 200 {
		t.Fatalf("upload: %s %v", res.Status, err)
	}
	if want := hex.EncodeToString(sum.Sum(nil)); got.Size != n || got.SHA256 != want {
		t.Fatalf("upload of %d bytes, sha256 %s: fakenb got %d bytes, sha256 %s", n, want, got.Size, got.SHA256)
	}
}

// pxPattern holds bytes/<n>'s content (byte k is k mod 256) from any
// phase: pxPattern[k%256:] continues the stream at offset k.
var pxPattern = sync.OnceValue(func() []byte {
	b := make([]byte, 64<<10+256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
})

// pxDownload GETs n bytes from fakenb's bytes/<n> and checks every byte.
func pxDownload(t testing.TB, client *http.Client, base, auth string, n int64) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"bytes/"+strconv.FormatInt(n, 10), nil)
	req.Header.Set("Authorization", auth)
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.ContentLength != n {
		t.Fatalf("download: %s, length %d", res.Status, res.ContentLength)
	}
	pat, buf := pxPattern(), make([]byte, 64<<10)
	var got int64
	for {
		m, err := res.Body.Read(buf)
		if !bytes.Equal(buf[:m], pat[got%256:got%256+int64(m)]) {
			t.Fatalf("download: wrong bytes in [%d, %d)", got, got+int64(m))
		}
		got += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("download: after %d bytes: %v", got, err)
		}
	}
	if got != n {
		t.Fatalf("download: %d bytes, want %d", got, n)
	}
}
