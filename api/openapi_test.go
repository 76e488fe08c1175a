package api

// The OpenAPI document is checked with github.com/pb33f/libopenapi and
// github.com/pb33f/libopenapi-validator rather than
// github.com/getkin/kin-openapi. libopenapi-validator's ValidateDocument
// validates the document against the official OpenAPI 3.1 JSON Schema
// (embedded in libopenapi), so a document it accepts is one any 3.1 tool
// should accept; building the model also resolves every $ref. kin-openapi
// grew 3.1 support only recently and checks documents with hand-written
// rules modelled on 3.0, not with the 3.1 meta-schema. libopenapi-validator
// also validates requests and responses against the document, which the
// tests below use to check the schemas against what encoding/json writes.
//
// The version is v0.14.0: later ones depend on pb33f forks of go-yaml and
// jsonschema that the module proxy used here does not serve.

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
)

var update = flag.Bool("update", false, "rewrite testdata/openapi.golden.json")

func openAPIDoc(t *testing.T) ([]byte, map[string]any) {
	t.Helper()
	b, err := OpenAPI(OpenAPIInfo{Version: "test", ServerURL: DefaultServerURL})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("the document is not JSON: %v", err)
	}
	return b, m
}

// newValidator parses doc and returns a validator of it, failing t when the
// model cannot be built (unresolved $ref, wrong shapes).
func newValidator(t *testing.T, doc []byte) validator.Validator {
	t.Helper()
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		t.Fatalf("libopenapi cannot read the document: %v", err)
	}
	v, errs := validator.NewValidator(d)
	if len(errs) > 0 {
		t.Fatalf("libopenapi cannot build the model: %v", errs)
	}
	return v
}

// validDocument reports whether the validator accepts doc as OpenAPI 3.1.
func validDocument(t *testing.T, doc []byte) (bool, string) {
	t.Helper()
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		return false, err.Error()
	}
	v, errs := validator.NewValidator(d)
	if len(errs) > 0 {
		return false, errs[0].Error()
	}
	ok, verrs := v.ValidateDocument()
	var msgs []string
	for _, e := range verrs {
		msgs = append(msgs, e.Error())
		for _, se := range e.SchemaValidationErrors {
			msgs = append(msgs, "  "+se.FieldPath+" ("+se.KeywordLocation+"): "+se.Reason)
		}
	}
	return ok, strings.Join(msgs, "\n")
}

func TestOpenAPIIsValid31(t *testing.T) {
	doc, m := openAPIDoc(t)
	if m["openapi"] != "3.1.0" {
		t.Fatalf("openapi = %v, want 3.1.0", m["openapi"])
	}
	if ok, why := validDocument(t, doc); !ok {
		t.Fatalf("the validator rejects the document:\n%s", why)
	}

	// The validator must notice a broken document, or the test above
	// proves nothing.
	mutations := []struct {
		name   string
		mutate func(m map[string]any)
	}{
		{"no info", func(m map[string]any) { delete(m, "info") }},
		{"no info.version", func(m map[string]any) { delete(m["info"].(map[string]any), "version") }},
		{"response without description", func(m map[string]any) {
			delete(op(m, "/api/bindings", "get")["responses"].(map[string]any)["200"].(map[string]any), "description")
		}},
		{"parameter in the body", func(m map[string]any) {
			op(m, "/api/bindings/{name}", "get")["parameters"].([]any)[0].(map[string]any)["in"] = "body"
		}},
		{"security scheme of no type", func(m map[string]any) {
			delete(m["components"].(map[string]any)["securitySchemes"].(map[string]any)["adminToken"].(map[string]any), "type")
		}},
	}
	for _, mu := range mutations {
		t.Run("rejects "+mu.name, func(t *testing.T) {
			_, m := openAPIDoc(t)
			mu.mutate(m)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			ok, why := validDocument(t, b)
			if ok {
				t.Fatal("the validator accepts the broken document")
			}
			if !strings.Contains(why, "not valid according to the 3.1") {
				t.Fatalf("rejected, but not by the 3.1 meta-schema: %s", why)
			}
		})
	}
}

func op(m map[string]any, path, method string) map[string]any {
	return m["paths"].(map[string]any)[path].(map[string]any)[method].(map[string]any)
}

func TestOpenAPIGolden(t *testing.T) {
	doc, _ := openAPIDoc(t)
	again, _ := openAPIDoc(t)
	if !bytes.Equal(doc, again) {
		t.Fatal("two calls give different documents")
	}
	const golden = "testdata/openapi.golden.json"
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, doc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (create it with go test ./api -run TestOpenAPIGolden -update)", err)
	}
	if !bytes.Equal(doc, want) {
		t.Fatalf("the OpenAPI document changed; review the diff and accept it with\n" +
			"  go test ./api -run TestOpenAPIGolden -update && git diff api/testdata/openapi.golden.json")
	}
}

func TestOpenAPIOperations(t *testing.T) {
	_, m := openAPIDoc(t)
	for _, e := range Endpoints() {
		o := op(m, e.Path, strings.ToLower(e.Method))
		if o["operationId"] != e.Name || !reflect.DeepEqual(o["tags"], []any{e.Group}) {
			t.Errorf("%s: operationId %v tags %v", e.Name, o["operationId"], o["tags"])
		}
		rs := o["responses"].(map[string]any)
		for _, st := range append(e.SuccessStatuses(), e.ErrorStatuses()...) {
			if rs[strconv.Itoa(st)] == nil {
				t.Errorf("%s: no response %d", e.Name, st)
			}
		}
		wantSec := map[Auth]string{
			AuthNone:   "<nil>",
			AuthAdmin:  "[map[adminToken:[]]]",
			AuthSpawn:  "[map[] map[adminToken:[]]]",
			AuthLaunch: "[map[adminToken:[]] map[launchToken:[]]]",
		}[e.Auth]
		if got := fmtAny(o["security"]); got != wantSec {
			t.Errorf("%s: security %s, want %s", e.Name, got, wantSec)
		}
	}
	// tmpnb answers 429 {"status": "full"}; the others the error body.
	if got := fmtAny(op(m, "/api/spawn/", "post")["responses"].(map[string]any)["429"]); !strings.Contains(got, "#/components/schemas/TmpnbFull") {
		t.Errorf("tmpnb.spawn 429: %s", got)
	}
	if got := fmtAny(op(m, "/api/binders/{binding}", "post")["responses"].(map[string]any)["429"]); got != "map[$ref:#/components/responses/Error429]" {
		t.Errorf("binders.spawn 429: %s", got)
	}
	// 503 of health is a degraded Health or an error.
	if got := fmtAny(op(m, "/api/health", "get")["responses"].(map[string]any)["503"]); !strings.Contains(got, "oneOf") || !strings.Contains(got, "Health") {
		t.Errorf("ops.health 503: %s", got)
	}
	// Each error is described once, with its suggestions.
	errs := m["components"].(map[string]any)["x-nbpool-errors"].(map[string]any)
	for _, s := range append(GlobalErrors(), ErrBindingNotFound, ErrRefused, ErrLaunchNotFound) {
		if d, ok := errs[s.Name].(map[string]any); !ok || d["message"] != s.Message || len(d["suggestions"].([]any)) != len(s.Suggestions) {
			t.Errorf("x-nbpool-errors.%s = %v", s.Name, errs[s.Name])
		}
	}
}

func TestOpenAPISchemas(t *testing.T) {
	_, m := openAPIDoc(t)
	schemas := m["components"].(map[string]any)["schemas"].(map[string]any)
	prop := func(typ, field string) string {
		return fmtAny(schemas[typ].(map[string]any)["properties"].(map[string]any)[field])
	}
	required := func(typ string) []string {
		var out []string
		for _, r := range asSlice(schemas[typ].(map[string]any)["required"]) {
			out = append(out, r.(string))
		}
		return out
	}
	checks := []struct{ name, got, want string }{
		{"time.Time", prop("Launch", "created"), "date-time"},
		{"Duration", fmtAny(schemas["Duration"]), "pattern"},
		{"Duration ref", prop("Cull", "idleTimeout"), "#/components/schemas/Duration"},
		{"map", prop("Binding", "env"), "additionalProperties:map[type:string]"},
		{"map of structs", prop("Health", "checks"), "additionalProperties:map[$ref:#/components/schemas/Check]"},
		{"slice of structs", prop("LaunchList", "items"), "items:map[$ref:#/components/schemas/Launch]"},
		{"pointer", prop("PoolUpdate", "minPool"), "type:integer"},
		{"named string", prop("Launch", "state"), "#/components/schemas/State"},
		{"doc comment", prop("Launch", "phase"), "Phase is the latest progress step"},
	}
	for _, c := range checks {
		if !strings.Contains(c.got, c.want) {
			t.Errorf("%s: %s does not contain %q", c.name, c.got, c.want)
		}
	}
	if got := required("Binding"); !slices.Contains(got, "name") || !slices.Contains(got, "image") ||
		slices.Contains(got, "command") || slices.Contains(got, "created") {
		t.Errorf("Binding required = %v: want name and image, not the omitempty/omitzero ones", got)
	}
	if got := required("PoolUpdate"); len(got) != 0 {
		t.Errorf("PoolUpdate required = %v: pointers are optional", got)
	}
	if got := fmtAny(schemas["Error"].(map[string]any)["properties"]); strings.Contains(got, "etryAfter") || strings.Contains(got, "cause") {
		t.Errorf(`Error schema has json:"-" or unexported fields: %s`, got)
	}
	// Request bodies require nothing: encoding/json takes any subset.
	if got := fmtAny(schemas["Binding-Input"]); strings.Contains(got, "required") || !strings.Contains(got, "PoolSpec-Input") {
		t.Errorf("Binding-Input = %s", got)
	}
	if _, ok := schemas["PoolUpdate-Input"]; ok {
		t.Error("PoolUpdate-Input exists: PoolUpdate requires nothing, its one schema serves both ways")
	}
	if got := fmtAny(op(m, "/api/openapi.json", "get")["responses"].(map[string]any)["200"]); !strings.Contains(got, "type:object") {
		t.Errorf("map[string]any answer: %s", got)
	}
}

// TestOpenAPIMatchesEncoding checks the schemas against the wire: each
// example request, and the JSON encoding of each answer type, validate
// against the document.
func TestOpenAPIMatchesEncoding(t *testing.T) {
	doc, _ := openAPIDoc(t)
	v := newValidator(t, doc)
	params := map[string]string{"name": "fake", "binding": "fake", "id": "abc123"}
	for _, e := range Endpoints() {
		path := DefaultServerURL + Expand(e.Path, params)
		if e.Request != nil && e.Example != "" {
			req := httptest.NewRequest(e.Method, path, strings.NewReader(e.Example))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer secret")
			if ok, errs := v.ValidateHttpRequest(req); !ok {
				t.Errorf("%s: the example does not match the request schema: %v", e.Name, errs)
			}
		}
		if e.Response == nil || e.MediaType() != "application/json" {
			continue
		}
		sample := reflect.New(reflect.TypeOf(e.Response)).Elem()
		fillNil(sample)
		body, err := json.Marshal(sample.Interface())
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(e.Method, path, nil)
		req.Header.Set("Authorization", "Bearer secret")
		resp := &http.Response{
			StatusCode: e.Success, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(bytes.NewReader(body)), Request: req,
		}
		if ok, errs := v.ValidateHttpResponse(req, resp); !ok {
			t.Errorf("%s: %s does not match the response schema: %v", e.Name, body, errs)
		}
	}
}

// fillNil makes v's nil slices and maps empty, as the server must send
// them ([] and {}, not null), and gives maps one zero entry.
func fillNil(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillNil(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.IsNil() {
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		}
		for i := range v.Len() {
			fillNil(v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() && v.Type().Key().Kind() == reflect.String {
			v.Set(reflect.MakeMap(v.Type()))
			e := reflect.New(v.Type().Elem()).Elem()
			fillNil(e)
			v.SetMapIndex(reflect.ValueOf("k").Convert(v.Type().Key()), e)
		}
	}
}

func TestCheckCatalog(t *testing.T) {
	if err := checkCatalog(Endpoints()); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name   string
		mutate func(eps []Endpoint) []Endpoint
		want   string
	}{
		{"duplicate name", func(eps []Endpoint) []Endpoint { return append(eps, eps[0]) }, "declared twice"},
		{"undeclared path param", func(eps []Endpoint) []Endpoint {
			eps[0].Path += "/{x}"
			return eps
		}, "has parameters"},
		{"example not JSON", func(eps []Endpoint) []Endpoint {
			eps[1].Example = "{name: fake}"
			return eps
		}, "not JSON"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			err := checkCatalog(b.mutate(Endpoints()))
			if err == nil || !strings.Contains(err.Error(), b.want) {
				t.Fatalf("err = %v, want %q", err, b.want)
			}
		})
	}
}

// fmtAny prints a decoded JSON value; fmt sorts map keys.
func fmtAny(v any) string { return fmt.Sprint(v) }

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}
