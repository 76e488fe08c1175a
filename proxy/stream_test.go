package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	gib = 1 << 30
	// transferSize is what TestLargeTransfers streams each way: 1 GiB, or
	// 64 MiB under the race detector, which is 4 times slower and whose
	// shadow memory would drown the RSS measurement (it checks races on the
	// streaming path, not memory).
	transferSize = gib >> (4 * raceFactor)
	// rssBudget is how much the process may grow over idle while a GiB
	// streams through it.
	rssBudget = 100 << 20
)

// vmRSS reads this process's resident set from /proc/self/status.
func vmRSS() (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

// rssWatch samples VmRSS every 10 ms until stopped and returns the peak.
func rssWatch() (stop func() int64) {
	var peak atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, ok := vmRSS(); ok && rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 { close(done); wg.Wait(); return peak.Load() }
}

// onlyReader hides every method but Read, so the client cannot learn the
// length and streams the body chunked, as a generator would.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// TestLargeTransfers streams a 1 GiB upload (from a generator, hashed by
// the backend) and a 1 GiB download through the proxy and checks that the
// process's resident memory, sampled every 10 ms, grows by less than
// 100 MB over idle. Client, proxy and backend share the process, so the
// bound covers all three: it shows that nothing on the way buffers the
// body. Under the race detector it streams 64 MiB each way and does not
// judge memory. The daemon-level version of this test belongs to the
// end-to-end suite.
func TestLargeTransfers(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 2 GiB; skipped with -short")
	}
	if _, ok := vmRSS(); !ok {
		t.Skip("no /proc/self/status")
	}
	f := newFixture(t, Options{})
	client := &http.Client{}
	tok := "token " + f.ra.Token

	// Warm up: connections, buffers, code pages. Then idle.
	req, _ := http.NewRequest("GET", f.srv.URL+"/user/"+idA+"/bytes/1048576", nil)
	req.Header.Set("Authorization", tok)
	if res, err := client.Do(req); err == nil {
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	runtime.GC()
	debug.FreeOSMemory()
	idle, _ := vmRSS()

	t.Run("upload", func(t *testing.T) {
		stop := rssWatch()
		start := time.Now()
		want := sha256.New()
		body := onlyReader{io.TeeReader(io.LimitReader(&patternReader{}, transferSize), want)}
		req, _ := http.NewRequest("POST", f.srv.URL+"/user/"+idA+"/upload", body)
		req.Header.Set("Authorization", tok)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got uploaded
		err = json.NewDecoder(res.Body).Decode(&got)
		res.Body.Close()
		peak := stop()
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%d %v", res.StatusCode, err)
		}
		if got.Size != transferSize || got.SHA256 != hex.EncodeToString(want.Sum(nil)) {
			t.Errorf("backend got %d bytes, sha256 %s", got.Size, got.SHA256)
		}
		report(t, "upload", idle, peak, time.Since(start))
	})

	t.Run("download", func(t *testing.T) {
		stop := rssWatch()
		start := time.Now()
		req, _ := http.NewRequest("GET", f.srv.URL+"/user/"+idA+"/bytes/"+strconv.Itoa(transferSize), nil)
		req.Header.Set("Authorization", tok)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		n, bad := int64(0), false
		buf, want := make([]byte, 64<<10), make([]byte, 64<<10)
		for {
			m, err := res.Body.Read(buf)
			fillPattern(want[:m], n)
			bad = bad || !bytes.Equal(buf[:m], want[:m])
			n += int64(m)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("after %d bytes: %v", n, err)
			}
		}
		peak := stop()
		if n != transferSize || bad {
			t.Errorf("got %d bytes, corrupted: %v", n, bad)
		}
		report(t, "download", idle, peak, time.Since(start))
	})
}

func report(t *testing.T, what string, idle, peak int64, d time.Duration) {
	t.Helper()
	growth := peak - idle
	t.Logf("%s of %d MiB: %v (%.0f MB/s); RSS idle %.1f MB, peak %.1f MB, growth %.1f MB",
		what, transferSize>>20, d.Round(time.Millisecond), transferSize/d.Seconds()/1e6,
		float64(idle)/1e6, float64(peak)/1e6, float64(growth)/1e6)
	if growth > rssBudget && raceFactor == 0 {
		t.Errorf("%s: RSS grew by %.1f MB, budget %d MB", what, float64(growth)/1e6, rssBudget>>20)
	}
}
