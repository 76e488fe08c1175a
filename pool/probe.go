package pool

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// newProbeClient returns the HTTP client of readiness probes: short dial and
// response timeouts, no keep-alive (each probe is to a new container).
func newProbeClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: time.Second}).DialContext,
			ResponseHeaderTimeout: 5 * time.Second,
			DisableKeepAlives:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// waitReady polls url with the token until it answers 200 or timeout passes.
// It polls fast at first (a warm start takes tens of milliseconds) and
// slower later.
func (m *Manager) waitReady(ctx context.Context, url, token string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := 10 * time.Millisecond
	var last error
	for {
		status, err := m.probeOnce(ctx, url, token)
		if err == nil && status == http.StatusOK {
			return nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("status %d", status)
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("not ready within %s: last probe of %s: %w", timeout, url, last)
			}
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*3/2, 500*time.Millisecond)
	}
}

func (m *Manager) probeOnce(ctx context.Context, url, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "token "+token)
	resp, err := m.probe.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}
