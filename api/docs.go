package api

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"reflect"
	"strings"
)

//go:embed docs.html.tmpl
var docsTemplate string

// DocsHTML returns the API as a self-contained HTML page (inline CSS, no
// script, nothing fetched), derived from Endpoints like OpenAPI: every
// endpoint by group with its auth, parameters, an example curl line, its
// CLI command, statuses and errors, then the global and client errors and
// the wire types.
func DocsHTML(info OpenAPIInfo) ([]byte, error) {
	info = info.withDefaults()
	if info.ServerURL == "" {
		info.ServerURL = DefaultServerURL
	}
	eps := Endpoints()
	if err := checkCatalog(eps); err != nil {
		return nil, err
	}
	docs, err := parseTypeDocs()
	if err != nil {
		return nil, fmt.Errorf("read the wire types' docs: %w", err)
	}
	page := docsPage{Info: info, GlobalErrors: docsErrors(GlobalErrors()), ClientErrors: docsErrors(clientErrors())}
	for _, errs := range [][]docsError{page.GlobalErrors, page.ClientErrors} {
		for i := range errs {
			errs[i].Anchor = "error-" + errs[i].Name
		}
	}
	types := typeCollector{docs: docs, seen: map[reflect.Type]bool{}}
	for _, e := range eps {
		if len(page.Groups) == 0 || page.Groups[len(page.Groups)-1].Name != e.Group {
			page.Groups = append(page.Groups, docsGroup{Name: e.Group})
		}
		g := &page.Groups[len(page.Groups)-1]
		g.Endpoints = append(g.Endpoints, docsEndpointOf(e, info.ServerURL, &types))
	}
	types.add(reflect.TypeFor[ErrorBody]())
	types.add(reflect.TypeFor[TmpnbFull]())
	page.Types = types.out
	tmpl, err := template.New("docs").Funcs(template.FuncMap{"code": codeSpans}).Parse(docsTemplate)
	if err != nil {
		return nil, fmt.Errorf("parse the docs template: %w", err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, page); err != nil {
		return nil, fmt.Errorf("render the docs page: %w", err)
	}
	return buf.Bytes(), nil
}

type docsPage struct {
	Info         OpenAPIInfo
	Groups       []docsGroup
	GlobalErrors []docsError
	ClientErrors []docsError
	Types        []docsType
}

type docsGroup struct {
	Name      string
	Endpoints []docsEndpoint
}

type docsEndpoint struct {
	Endpoint
	AuthText string
	Curl     string
	Request  *docsField // the body's type; nil for none
	Response *docsField
	Success  []docsStatus
	Errors   []docsError // own errors
}

type docsStatus struct {
	Code int
	Text string
}

type docsError struct {
	ErrorSpec
	Codes  string // "401, 403"
	Anchor string // id of its row, for the global and client errors
}

type docsType struct {
	Name   string
	Doc    string
	Kind   string // for non-struct types: what it is written as
	Fields []docsField
}

type docsField struct {
	Name     string
	Type     string
	Link     string // type name to link to; "" for basic types
	Required bool
	Doc      string
}

func docsEndpointOf(e Endpoint, base string, types *typeCollector) docsEndpoint {
	d := docsEndpoint{Endpoint: e, AuthText: e.Auth.String(), Curl: curlLine(e, base), Errors: docsErrors(e.Errors)}
	if e.Request != nil {
		d.Request = types.field(reflect.TypeOf(e.Request))
	}
	if e.Response != nil {
		d.Response = types.field(reflect.TypeOf(e.Response))
	}
	for _, st := range e.SuccessStatuses() {
		d.Success = append(d.Success, docsStatus{st, http.StatusText(st)})
	}
	return d
}

func docsErrors(specs []ErrorSpec) []docsError {
	var out []docsError
	for _, s := range specs {
		codes := fmt.Sprint(s.Status)
		for _, st := range s.Statuses {
			codes += fmt.Sprintf(", %d", st)
		}
		if s.Status == 0 {
			codes = "none"
		}
		out = append(out, docsError{ErrorSpec: s, Codes: codes})
	}
	return out
}

// curlLine returns a curl command calling e at base, with uppercase
// placeholders for the path parameters, the example body and the token
// header when e needs one.
func curlLine(e Endpoint, base string) string {
	parts := []string{"curl"}
	switch {
	case e.Method == http.MethodHead:
		parts = append(parts, "-I")
	case e.MediaType() == "text/event-stream":
		parts = append(parts, "-N")
	}
	if e.Method != http.MethodGet && e.Method != http.MethodHead {
		parts = append(parts, "-X", e.Method)
	}
	if e.Auth == AuthAdmin || e.Auth == AuthLaunch {
		parts = append(parts, `-H "Authorization: token $NBPOOL_TOKEN"`)
	}
	if e.Request != nil {
		body := e.Example
		if body == "" {
			body = "{}"
		}
		parts = append(parts, "-H 'Content-Type: application/json'", "-d "+shellQuote(body))
	}
	path := e.Path
	for _, p := range e.PathParams() {
		path = strings.ReplaceAll(path, "{"+p.Name+"}", strings.ToUpper(p.Name))
	}
	return strings.Join(append(parts, strings.TrimRight(base, "/")+path), " ")
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// typeCollector lists the named types reachable from the bodies, each once,
// in the order first met.
type typeCollector struct {
	docs typeDocs
	seen map[reflect.Type]bool
	out  []docsType
}

// add records t and the named types of its fields, and returns t's label.
func (c *typeCollector) add(t reflect.Type) string {
	label := typeLabel(t)
	t = deref(t)
	for t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		t = deref(t.Elem())
	}
	name := componentName(t)
	if name == "" || c.seen[t] {
		return label
	}
	c.seen[t] = true
	i := len(c.out)
	c.out = append(c.out, docsType{Name: name, Doc: c.docs[name]})
	if t.Kind() != reflect.Struct {
		c.out[i].Kind = typeLabel(t)
		if t == reflect.TypeFor[Duration]() {
			c.out[i].Kind = "string: a Go duration such as 90s, 10m or 1h30m"
		} else if t.Kind() == reflect.String {
			c.out[i].Kind = "string"
		}
		return label
	}
	for _, f := range jsonFields(t, c.docs) {
		// field may grow c.out: make the field first, then index c.out.
		df := c.field(f.Type)
		df.Name, df.Required, df.Doc = f.Name, f.Required, f.Doc
		c.out[i].Fields = append(c.out[i].Fields, *df)
	}
	return label
}

// field records t and returns its label, with a link when it is (or
// contains) a listed type.
func (c *typeCollector) field(t reflect.Type) *docsField {
	inner := deref(t)
	for inner.Kind() == reflect.Slice || inner.Kind() == reflect.Array || inner.Kind() == reflect.Map {
		inner = deref(inner.Elem())
	}
	return &docsField{Type: c.add(t), Link: componentName(inner)}
}

// codeSpans escapes s for HTML and writes its `backquoted` spans as <code>.
func codeSpans(s string) template.HTML {
	parts := strings.Split(s, "`")
	if len(parts)%2 == 0 { // unbalanced: leave the backquotes
		return template.HTML(template.HTMLEscapeString(s))
	}
	var b strings.Builder
	for i, p := range parts {
		p = template.HTMLEscapeString(p)
		if i%2 == 1 {
			p = "<code>" + p + "</code>"
		}
		b.WriteString(p)
	}
	return template.HTML(b.String())
}
