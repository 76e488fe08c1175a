package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// OpenAPIInfo is what the OpenAPI document and the docs page say about the
// daemon serving them.
type OpenAPIInfo struct {
	// Title names the API; "nbpool" when empty.
	Title string
	// Version is the daemon's version; "dev" when empty.
	Version string
	// ServerURL is the daemon's base URL, e.g. "http://127.0.0.1:8000";
	// the docs page uses it in its examples, DefaultServerURL when empty.
	ServerURL string
}

// DefaultServerURL is where `nbpool serve` listens by default.
const DefaultServerURL = "http://127.0.0.1:8000"

func (i OpenAPIInfo) withDefaults() OpenAPIInfo {
	if i.Title == "" {
		i.Title = "nbpool"
	}
	if i.Version == "" {
		i.Version = "dev"
	}
	return i
}

// OpenAPI returns the API as an OpenAPI 3.1 document in JSON, derived from
// Endpoints and the wire types. The output is deterministic (object keys
// sorted), so it can be compared byte for byte. It fails when the catalog
// contradicts itself (see the test for what is checked).
func OpenAPI(info OpenAPIInfo) ([]byte, error) {
	info = info.withDefaults()
	eps := Endpoints()
	if err := checkCatalog(eps); err != nil {
		return nil, err
	}
	g, err := newSchemaGen()
	if err != nil {
		return nil, fmt.Errorf("read the wire types' docs: %w", err)
	}
	paths := map[string]any{}
	var tags []any
	seen := map[string]bool{}
	for _, e := range eps {
		if !seen[e.Group] {
			seen[e.Group] = true
			tags = append(tags, map[string]any{"name": e.Group})
		}
		item, _ := paths[e.Path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[e.Path] = item
		}
		item[strings.ToLower(e.Method)] = g.operation(e)
	}
	g.schema(reflect.TypeFor[ErrorBody]())
	g.schema(reflect.TypeFor[TmpnbFull]())
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   info.Title,
			"version": info.Version,
			"description": "The nbpool REST API: warm pools of Jupyter notebook containers. " +
				"Generated from the endpoint catalog of package api. Errors answer " +
				"{\"error\": {name, status, message, suggestions}}; the tmpnb-compatible " +
				"endpoints answer 429 {\"status\": \"full\"} at capacity.",
		},
		"tags":  tags,
		"paths": paths,
		"components": map[string]any{
			"schemas":         g.components,
			"securitySchemes": securitySchemes(),
			"responses":       g.globalResponses(),
			"x-nbpool-errors": errorDocs(eps),
		},
		"x-nbpool-global-errors": errorNames(GlobalErrors()),
		"x-nbpool-client-errors": errorNames(clientErrors()),
	}
	if info.ServerURL != "" {
		doc["servers"] = []any{map[string]any{"url": info.ServerURL}}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode the OpenAPI document: %w", err)
	}
	return buf.Bytes(), nil
}

func securitySchemes() map[string]any {
	return map[string]any{
		"adminToken": map[string]any{
			"type": "http", "scheme": "bearer",
			"description": "The daemon's admin token (NBPOOL_ADMIN_TOKEN or the file named by adminTokenFile), " +
				"sent as `Authorization: Bearer T` or, as JupyterHub and tmpnb clients do, `Authorization: token T`.",
		},
		"launchToken": map[string]any{
			"type": "http", "scheme": "bearer",
			"description": "A launch's own token (the token of its spawn answer), " +
				"sent as `Authorization: Bearer T` or `Authorization: token T`; it grants access to that launch only.",
		},
	}
}

// security returns the operation's security requirements; nil for none.
func security(a Auth) []any {
	admin := map[string]any{"adminToken": []any{}}
	switch a {
	case AuthAdmin:
		return []any{admin}
	case AuthSpawn:
		return []any{map[string]any{}, admin} // {} first: no token is fine
	case AuthLaunch:
		return []any{admin, map[string]any{"launchToken": []any{}}}
	}
	return nil
}

// operation returns the OpenAPI operation of e.
func (g *schemaGen) operation(e Endpoint) map[string]any {
	desc := e.Description + "\n\nAuth: " + e.Auth.String() + "."
	if e.Command != "" {
		desc += " CLI: `nbpool " + e.Command + "`."
	}
	if len(e.Aliases) > 0 {
		desc += " Also routed at " + strings.Join(e.Aliases, ", ") + "."
	}
	op := map[string]any{
		"operationId":  e.Name,
		"tags":         []any{e.Group},
		"summary":      firstSentence(e.Description),
		"description":  desc,
		"responses":    g.responses(e),
		"x-nbpool-msg": e.Msg,
	}
	if e.Command != "" {
		op["x-nbpool-command"] = "nbpool " + e.Command
	}
	if len(e.Aliases) > 0 {
		op["x-nbpool-aliases"] = e.Aliases
	}
	if s := security(e.Auth); s != nil {
		op["security"] = s
	}
	if len(e.Params) > 0 {
		var ps []any
		for _, p := range e.Params {
			ps = append(ps, map[string]any{
				"name": p.Name, "in": p.In, "description": p.Description,
				"required": p.Required || p.In == "path",
				"schema":   map[string]any{"type": p.Type},
			})
		}
		op["parameters"] = ps
	}
	if e.Request != nil {
		t := reflect.TypeOf(e.Request)
		media := map[string]any{"schema": g.inputSchema(t)}
		if e.Example != "" {
			media["example"] = json.RawMessage(e.Example)
		}
		op["requestBody"] = map[string]any{
			"required": bodyRequired(t),
			"content":  map[string]any{"application/json": media},
		}
	}
	return op
}

// bodyRequired reports whether a request body of type t must be sent: when
// it has a required field.
func bodyRequired(t reflect.Type) bool {
	t = deref(t)
	if t.Kind() != reflect.Struct {
		return true
	}
	for _, f := range jsonFields(t, nil) {
		if f.Required {
			return true
		}
	}
	return false
}

// successContent returns the content of e's success answers; nil for none.
func (g *schemaGen) successContent(e Endpoint) map[string]any {
	ct := e.MediaType()
	switch {
	case e.Method == http.MethodHead:
		return nil
	case ct == "text/event-stream":
		return map[string]any{ct: map[string]any{
			"schema": map[string]any{"type": "string",
				"description": "Server-sent events: each `data:` line holds one Event as JSON; lines starting with `:` are keepalives."},
			"x-nbpool-event": g.schema(reflect.TypeOf(e.Response)),
		}}
	case e.Response != nil:
		return map[string]any{ct: map[string]any{"schema": g.schema(reflect.TypeOf(e.Response))}}
	case ct != "application/json":
		return map[string]any{ct: map[string]any{"schema": map[string]any{"type": "string"}}}
	}
	return nil
}

// responses returns e's responses: its success statuses, then one per error
// status (own errors, then global ones). A status with only global errors
// refers to the shared components.responses.Error<status>.
func (g *schemaGen) responses(e Endpoint) map[string]any {
	rs := map[string]any{}
	for _, st := range e.SuccessStatuses() {
		r := map[string]any{"description": http.StatusText(st)}
		if c := g.successContent(e); c != nil && st != http.StatusNoContent {
			r["content"] = c
		}
		rs[strconv.Itoa(st)] = r
	}
	for _, st := range e.ErrorStatuses() {
		key := strconv.Itoa(st)
		specs := e.ErrorsWithStatus(st)
		own := slices.ContainsFunc(e.Errors, func(s ErrorSpec) bool { return hasStatus(s, st) })
		compatFull := e.Compat && st == ErrFull.Status
		r, isSuccess := rs[key].(map[string]any)
		if !own && !compatFull && !isSuccess {
			rs[key] = map[string]any{"$ref": "#/components/responses/Error" + key}
			continue
		}
		errBody := g.schema(reflect.TypeFor[ErrorBody]())
		if compatFull {
			errBody = g.schema(reflect.TypeFor[TmpnbFull]())
		}
		if !isSuccess {
			rs[key] = g.errorResponse(specs, errBody)
			continue
		}
		// A success status that is also an error status (503 of health):
		// either body may come.
		r["description"] = r["description"].(string) + "; or an error: " + errorLines(specs)
		if c, ok := r["content"].(map[string]any); ok {
			for ct, m := range c {
				c[ct] = map[string]any{"schema": map[string]any{"oneOf": []any{m.(map[string]any)["schema"], errBody}}}
			}
		}
		r["x-nbpool-errors"] = errorNames(specs)
	}
	return rs
}

// errorResponse is the response of an error status.
func (g *schemaGen) errorResponse(specs []ErrorSpec, body map[string]any) map[string]any {
	return map[string]any{
		"description":     errorLines(specs),
		"content":         map[string]any{"application/json": map[string]any{"schema": body}},
		"x-nbpool-errors": errorNames(specs),
	}
}

// globalResponses are the responses of the statuses of the global errors,
// for components.responses.
func (g *schemaGen) globalResponses() map[string]any {
	out := map[string]any{}
	for _, st := range (Endpoint{}).ErrorStatuses() {
		out["Error"+strconv.Itoa(st)] = g.errorResponse((Endpoint{}).ErrorsWithStatus(st), g.schema(reflect.TypeFor[ErrorBody]()))
	}
	return out
}

// errorLines describes specs in one line: "`name`: message; …".
func errorLines(specs []ErrorSpec) string {
	var lines []string
	for _, s := range specs {
		lines = append(lines, "`"+s.Name+"`: "+s.Message)
	}
	return strings.Join(lines, "; ")
}

// errorDocs describes every error, by name, for components.x-nbpool-errors:
// status, message template and suggestions. Responses and the top-level
// x-nbpool-*-errors lists name them.
func errorDocs(eps []Endpoint) map[string]any {
	out := map[string]any{}
	specs := append(GlobalErrors(), clientErrors()...)
	for _, e := range eps {
		specs = append(specs, e.Errors...)
	}
	for _, s := range specs {
		d := map[string]any{"status": s.Status, "message": s.Message, "suggestions": s.Suggestions}
		if len(s.Statuses) > 0 {
			d["statuses"] = s.Statuses
		}
		out[s.Name] = d
	}
	return out
}

// errorNames lists the names of specs.
func errorNames(specs []ErrorSpec) []string {
	var out []string
	for _, s := range specs {
		out = append(out, s.Name)
	}
	return out
}

// firstSentence returns s up to its first ". " or its end.
func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return s
}
