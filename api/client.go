package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client calls an nbpool daemon through the endpoint catalog: Do runs any
// endpoint by name, and the typed methods wrap Do for each one. Error
// answers come back as *Error (use errors.Is with the ErrorSpecs, or
// errors.As to read the suggestions); no answer at all as an *Error made
// from ErrRefused or ErrTimeout.
//
// A Client is safe for concurrent use once its fields are set.
type Client struct {
	// BaseURL is the daemon's address, e.g. "http://127.0.0.1:8000".
	BaseURL string
	// Token, when set, is sent as "Authorization: token <Token>": the admin
	// token or a launch's token.
	Token string
	// HTTP sends the requests; http.DefaultClient when nil. Its Timeout
	// bounds whole calls, event streams included: prefer a context deadline
	// for calls and no Timeout for Events.
	HTTP *http.Client
}

// NewClient returns a client of the daemon at baseURL with its own
// http.Client (no timeout: bound calls with their context).
func NewClient(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{}}
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// badResponseSpec is the error the client reports when the daemon answers
// something it cannot read: not JSON, or not the catalog's shape.
func badResponseSpec() ErrorSpec {
	return ErrorSpec{
		Name:    "badResponse",
		Message: "unexpected answer from nbpool at {url}: HTTP {status}: {body}",
		Suggestions: []string{
			"check that --url or NBPOOL_URL points to nbpool and not to another server or proxy",
			"check that the client and the daemon have the same version (`nbpool version --server`)",
		},
	}
}

// clientErrors are the errors the client makes itself: ClientErrors and
// badResponse.
func clientErrors() []ErrorSpec {
	errs := ClientErrors()
	for _, s := range errs {
		if s.Name == "badResponse" {
			return errs
		}
	}
	return append(errs, badResponseSpec())
}

// Do calls the endpoint called name. params fills its path parameters (each
// is required); query and body (JSON-encoded when not nil) are sent as is.
// On a success status the JSON answer is decoded into out when out is not
// nil. Do returns the HTTP status (0 when there is no answer) and, for
// error answers, an *Error.
func (c *Client) Do(ctx context.Context, name string, params map[string]string, query url.Values, body, out any) (int, error) {
	e, resp, err := c.send(ctx, name, params, query, body)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if !e.IsSuccess(resp.StatusCode) && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		return resp.StatusCode, c.errorFrom(e, params, resp)
	}
	if resp.StatusCode >= 300 {
		// A declared non-2xx success (503 of ops.health) may also be an error.
		b, _ := io.ReadAll(resp.Body)
		var eb ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error != nil && eb.Error.Name != "" {
			return resp.StatusCode, eb.Error
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
	}
	if out == nil || resp.StatusCode == http.StatusNoContent || e.Method == http.MethodHead {
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		var ne net.Error
		if ctx.Err() != nil || errors.As(err, &ne) { // cut off while reading
			return resp.StatusCode, c.transportError(ctx, errors.Join(ctx.Err(), err))
		}
		return resp.StatusCode, c.badResponse(resp.StatusCode, "the body is not JSON: "+err.Error())
	}
	return resp.StatusCode, nil
}

// send looks the endpoint up, builds its request and sends it.
func (c *Client) send(ctx context.Context, name string, params map[string]string, query url.Values, body any) (Endpoint, *http.Response, error) {
	e, ok := Lookup(name)
	if !ok {
		return e, nil, fmt.Errorf("api client: no endpoint named %q", name)
	}
	path, err := expandPath(e, params)
	if err != nil {
		return e, nil, err
	}
	u := c.BaseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return e, nil, fmt.Errorf("api client: encode the body of %s: %w", name, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, e.Method, u, rd)
	if err != nil {
		return e, nil, fmt.Errorf("api client: %s: %w", name, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", e.MediaType())
	if c.Token != "" {
		req.Header.Set("Authorization", "token "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return e, nil, c.transportError(ctx, err)
	}
	return e, resp, nil
}

// expandPath fills e's path template with the url.PathEscape'd params.
func expandPath(e Endpoint, params map[string]string) (string, error) {
	path := e.Path
	for _, p := range e.PathParams() {
		v := params[p.Name]
		if v == "" {
			return "", fmt.Errorf("api client: %s needs the path parameter %q (%s)", e.Name, p.Name, p.Description)
		}
		path = strings.ReplaceAll(path, "{"+p.Name+"}", url.PathEscape(v))
	}
	for k := range params {
		if !strings.Contains(e.Path, "{"+k+"}") {
			return "", fmt.Errorf("api client: %s has no path parameter %q", e.Name, k)
		}
	}
	return path, nil
}

// transportError turns a failed round trip into ErrTimeout or ErrRefused,
// wrapping the cause. A cancelled context is returned as is.
func (c *Client) transportError(ctx context.Context, err error) error {
	reason := err
	var ue *url.Error
	if errors.As(err, &ue) {
		reason = ue.Err
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return ErrTimeout.New("url", c.BaseURL, "reason", reason).Wrap(err)
	case ctx.Err() != nil:
		return fmt.Errorf("api client: %w", err)
	}
	var oe *net.OpError
	var de *net.DNSError
	if errors.As(err, &oe) && oe.Op == "dial" || errors.As(err, &de) {
		return ErrRefused.New("url", c.BaseURL, "reason", reason).Wrap(err)
	}
	return fmt.Errorf("api client: %w", err)
}

// errorFrom reads an error answer: the catalog's {"error": {...}} body,
// tmpnb's 429 {"status": "full"} on compatible endpoints, or, when there is
// no body (HEAD), the endpoint's declared error for the status.
func (c *Client) errorFrom(e Endpoint, params map[string]string, resp *http.Response) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return c.badResponse(resp.StatusCode, "reading the body: "+err.Error())
	}
	retry, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	var eb ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != nil && eb.Error.Name != "" {
		if eb.Error.Status == 0 {
			eb.Error.Status = resp.StatusCode
		}
		eb.Error.RetryAfter = retry
		return eb.Error
	}
	var full TmpnbFull
	if e.Compat && resp.StatusCode == ErrFull.Status && json.Unmarshal(b, &full) == nil && full.Status == "full" {
		ae := ErrFull.New("reason", "the daemon is at capacity")
		ae.RetryAfter = retry
		return ae
	}
	if len(bytes.TrimSpace(b)) == 0 {
		if specs := e.ErrorsWithStatus(resp.StatusCode); len(specs) > 0 {
			var args []any
			for k, v := range params {
				args = append(args, k, v)
			}
			return specs[0].New(args...).WithStatus(resp.StatusCode)
		}
	}
	return c.badResponse(resp.StatusCode, snippet(b))
}

// badResponse reports an answer that does not follow the catalog.
func (c *Client) badResponse(status int, body string) *Error {
	return badResponseSpec().New("url", c.BaseURL, "status", status, "body", body).WithStatus(status)
}

// snippet returns the start of a body for an error message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "(empty body)"
	}
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}

// call runs Do for the typed methods, decoding the answer into a T.
func call[T any](ctx context.Context, c *Client, name string, params map[string]string, query url.Values, body any) (T, int, error) {
	var out T
	status, err := c.Do(ctx, name, params, query, body, &out)
	return out, status, err
}

// noStatus drops the status of call's results.
func noStatus[T any](v T, _ int, err error) (T, error) { return v, err }

// kv makes a path-parameter map from key, value pairs.
func kv(pairs ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}

// ListBindings calls bindings.list.
func (c *Client) ListBindings(ctx context.Context) (BindingList, error) {
	return noStatus(call[BindingList](ctx, c, "bindings.list", nil, nil, nil))
}

// GetBinding calls bindings.get.
func (c *Client) GetBinding(ctx context.Context, name string) (Binding, error) {
	return noStatus(call[Binding](ctx, c, "bindings.get", kv("name", name), nil, nil))
}

// BindingExists calls bindings.exists: true on 200, false on
// bindingNotFound, an error otherwise.
func (c *Client) BindingExists(ctx context.Context, name string) (bool, error) {
	_, err := c.Do(ctx, "bindings.exists", kv("name", name), nil, nil, nil)
	if ErrBindingNotFound.Is(err) {
		return false, nil
	}
	return err == nil, err
}

// CreateBinding calls bindings.create.
func (c *Client) CreateBinding(ctx context.Context, b Binding) (Binding, error) {
	return noStatus(call[Binding](ctx, c, "bindings.create", nil, nil, b))
}

// PutBinding calls bindings.put with b under b.Name; the status is 201 when
// the binding was created, 200 when it was replaced.
func (c *Client) PutBinding(ctx context.Context, b Binding) (Binding, int, error) {
	return call[Binding](ctx, c, "bindings.put", kv("name", b.Name), nil, b)
}

// DeleteBinding calls bindings.delete; force also ends its claimed launches.
func (c *Client) DeleteBinding(ctx context.Context, name string, force bool) error {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	_, err := c.Do(ctx, "bindings.delete", kv("name", name), q, nil, nil)
	return err
}

// Spawn calls binders.spawn: 201 with a claimed launch from the pool, 202
// with a starting one (follow it with Events or poll it with Launch).
func (c *Client) Spawn(ctx context.Context, binding string, req SpawnRequest) (Launch, int, error) {
	return call[Launch](ctx, c, "binders.spawn", kv("binding", binding), nil, req)
}

// Launch calls binders.status.
func (c *Client) Launch(ctx context.Context, binding, id string) (Launch, error) {
	return noStatus(call[Launch](ctx, c, "binders.status", kv("binding", binding, "id", id), nil, nil))
}

// StopLaunch calls binders.stop.
func (c *Client) StopLaunch(ctx context.Context, binding, id string) (Launch, error) {
	return noStatus(call[Launch](ctx, c, "binders.stop", kv("binding", binding, "id", id), nil, nil))
}

// ListLaunches calls binders.list; state "" means the server's default.
func (c *Client) ListLaunches(ctx context.Context, binding, state string) (LaunchList, error) {
	var q url.Values
	if state != "" {
		q = url.Values{"state": {state}}
	}
	return noStatus(call[LaunchList](ctx, c, "binders.list", kv("binding", binding), q, nil))
}

// ListPools calls pools.list.
func (c *Client) ListPools(ctx context.Context) (PoolList, error) {
	return noStatus(call[PoolList](ctx, c, "pools.list", nil, nil, nil))
}

// GetPool calls pools.get.
func (c *Client) GetPool(ctx context.Context, binding string) (Pool, error) {
	return noStatus(call[Pool](ctx, c, "pools.get", kv("binding", binding), nil, nil))
}

// SetPool calls pools.set.
func (c *Client) SetPool(ctx context.Context, binding string, u PoolUpdate) (Pool, error) {
	return noStatus(call[Pool](ctx, c, "pools.set", kv("binding", binding), nil, u))
}

// TmpnbSpawn calls tmpnb.spawn; a full daemon answers an ErrFull error.
func (c *Client) TmpnbSpawn(ctx context.Context, req TmpnbSpawnRequest) (TmpnbSpawn, error) {
	return noStatus(call[TmpnbSpawn](ctx, c, "tmpnb.spawn", nil, nil, req))
}

// Stats calls tmpnb.stats.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	return noStatus(call[Stats](ctx, c, "tmpnb.stats", nil, nil, nil))
}

// Health calls ops.health. A degraded daemon answers 503 with its checks:
// that is no error, Health.Status says "degraded".
func (c *Client) Health(ctx context.Context) (Health, error) {
	return noStatus(call[Health](ctx, c, "ops.health", nil, nil, nil))
}

// ServerVersion calls ops.version.
func (c *Client) ServerVersion(ctx context.Context) (Version, error) {
	return noStatus(call[Version](ctx, c, "ops.version", nil, nil, nil))
}
