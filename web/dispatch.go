package web

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/engine"
	"github.com/nbpool/nbpool/pool"
)

// maxBody bounds request bodies.
const maxBody = 1 << 20

// written is the reply status of a handler that wrote its own answer.
const written = -1

// call is one API request being served.
type call struct {
	w    http.ResponseWriter
	r    *http.Request
	ep   api.Endpoint
	vars map[string]string
	// admin is true when the request carries the admin token.
	admin bool
	// token is the token the request carries (header or ?token=), if any.
	token string
}

// reply is a handler's answer: status (0 = the endpoint's success status)
// and body (nil = none).
type reply struct {
	status int
	body   any
}

// handlerFunc serves one endpoint of the catalog.
type handlerFunc func(c *call) (reply, error)

// serve wraps a handler with what every endpoint shares: auth by the
// catalog, the error mapping and JSON encoding.
func (s *Server) serve(ep api.Endpoint, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{w: w, r: r, ep: ep, vars: mux.Vars(r)}
		c.token = requestToken(r)
		c.admin = s.isAdmin(c.token)
		if err := s.authorize(c); err != nil {
			s.writeError(c, err)
			return
		}
		rep, err := h(c)
		if err != nil {
			s.writeError(c, err)
			return
		}
		switch rep.status {
		case written:
			return
		case 0:
			rep.status = ep.Success
		}
		if rep.body == nil || r.Method == http.MethodHead {
			w.WriteHeader(rep.status)
			return
		}
		writeJSON(w, rep.status, rep.body)
	})
}

// authorize enforces the endpoint's Auth. Launch-token endpoints check the
// token themselves, once they know the launch.
func (s *Server) authorize(c *call) error {
	need := c.ep.Auth == api.AuthAdmin || (c.ep.Auth == api.AuthSpawn && s.opts.SpawnAuth == "admin")
	if !need || c.admin {
		return nil
	}
	return s.unauthorized(c.token, "the admin token")
}

// unauthorized is 401 without a token and 403 with a wrong one.
func (s *Server) unauthorized(token, who string) error {
	if s.opts.AdminToken == "" && who == "the admin token" {
		who = "the admin token, and none is set: start the daemon with NBPOOL_ADMIN_TOKEN"
	}
	e := api.ErrUnauthorized.New("who", who)
	if token != "" {
		e.WithStatus(http.StatusForbidden)
	}
	return e
}

// isAdmin compares in constant time.
func (s *Server) isAdmin(token string) bool {
	return s.opts.AdminToken != "" && token != "" &&
		subtle.ConstantTimeCompare([]byte(token), []byte(s.opts.AdminToken)) == 1
}

// requestToken reads "Authorization: token T" or "Bearer T", then ?token=.
func requestToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && (strings.EqualFold(scheme, "token") || strings.EqualFold(scheme, "bearer")) {
			return strings.TrimSpace(tok)
		}
	}
	return r.URL.Query().Get("token")
}

// decode reads the JSON body into v: at most 1 MiB, no unknown fields, one
// value. An empty body leaves v as it is when optional is true.
func decode(c *call, v any, optional bool) error {
	body := http.MaxBytesReader(c.w, c.r.Body, maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var maxErr *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF) && optional:
		return nil
	case errors.Is(err, io.EOF):
		return api.ErrMalformedRequest.New("reason", "the body is empty; this endpoint needs a JSON body")
	case errors.As(err, &maxErr):
		return api.ErrTooLarge.New("limit", "1 MiB")
	case err != nil:
		e := api.ErrMalformedRequest.New("reason", jsonReason(err)).Wrap(err)
		if unprocessable(err) {
			e.WithStatus(http.StatusUnprocessableEntity)
		}
		return e
	}
	if dec.More() {
		return api.ErrMalformedRequest.New("reason", "more than one JSON value in the body")
	}
	return nil
}

// unprocessable tells well-formed JSON that does not fit the endpoint (an
// unknown field, a wrong type: 422) from a body that is not JSON (400).
func unprocessable(err error) bool {
	var typ *json.UnmarshalTypeError
	return errors.As(err, &typ) || strings.HasPrefix(err.Error(), "json: unknown field ")
}

// jsonReason says what is wrong with a body in words a user can act on.
func jsonReason(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q must be %s, not %s", typ.Field, typ.Type, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return err.Error()
}

// writeError answers with the error body of DESIGN.md, or tmpnb's shape on
// tmpnb-compatible endpoints when the pool is full.
func (s *Server) writeError(c *call, err error) {
	e := toAPIError(err)
	if !c.ep.AllowsError(e.Name) {
		s.log.Error().Str("endpoint", c.ep.Name).Str("error", e.Name).Msg("undeclared error answered; declare it in the api catalog")
	}
	switch {
	case errors.Is(err, context.Canceled):
		s.log.Debug().Str("endpoint", c.ep.Name).Msg("the client went away")
	case e.Status >= 500:
		s.log.Error().Err(err).Str("endpoint", c.ep.Name).Msg(e.Name)
	}
	if e.RetryAfter > 0 {
		c.w.Header().Set("Retry-After", fmt.Sprint(e.RetryAfter))
	}
	if c.ep.Compat && e.Name == api.ErrFull.Name {
		writeJSON(c.w, e.Status, api.TmpnbFull{Status: "full"})
		return
	}
	if c.r.Method == http.MethodHead {
		c.w.WriteHeader(e.Status)
		return
	}
	writeJSON(c.w, e.Status, api.ErrorBody{Error: e})
}

// toAPIError is the one place domain errors become API errors.
func toAPIError(err error) *api.Error {
	var e *api.Error
	var imgErr *pool.ImageError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &imgErr):
		return api.ErrImageUnavailable.New("image", imgErr.Image, "reason", imgErr.Err).Wrap(err)
	case errors.Is(err, pool.ErrFull):
		e = api.ErrFull.New("reason", reasonOf(err, pool.ErrFull)).Wrap(err)
		e.RetryAfter = 5
		return e
	case errors.Is(err, pool.ErrClosed):
		return api.ErrShuttingDown.New().Wrap(err)
	case errors.Is(err, engine.ErrUnavailable):
		return api.ErrEngineUnavailable.New("reason", err).Wrap(err)
	}
	return api.ErrInternal.New("reason", err).Wrap(err)
}

// reasonOf strips the sentinel's own text from a wrapped error's message.
func reasonOf(err, sentinel error) string {
	msg := err.Error()
	if i := strings.Index(msg, sentinel.Error()+": "); i >= 0 {
		return msg[i+len(sentinel.Error())+2:]
	}
	return msg
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(api.ErrorBody{Error: api.ErrInternal.New("reason", err)})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
