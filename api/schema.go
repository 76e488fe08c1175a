package api

import (
	"embed"
	"encoding"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"strings"
	"time"
)

// typeSources are the files declaring the wire types. They are parsed for
// their doc comments, which become the schemas' descriptions, so the
// OpenAPI document and the docs page say what the Go code says.
//
//go:embed types.go errors.go duration.go
var typeSources embed.FS

// durationPattern matches what Duration accepts: a Go duration string.
const durationPattern = `^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|μs|ms|s|m|h))+)$`

// typeDocs maps "Type" and "Type.Field" (Go names) to their doc comments.
type typeDocs map[string]string

// parseTypeDocs reads the doc comments of the types in typeSources.
func parseTypeDocs() (typeDocs, error) {
	docs := typeDocs{}
	entries, err := typeSources.ReadDir(".")
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	for _, ent := range entries {
		src, err := typeSources.ReadFile(ent.Name())
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(fset, ent.Name(), src, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				doc := ts.Doc
				if doc == nil && len(gd.Specs) == 1 {
					doc = gd.Doc
				}
				docs[ts.Name.Name] = commentText(doc)
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				for _, fld := range st.Fields.List {
					text := commentText(fld.Doc)
					if text == "" {
						text = commentText(fld.Comment)
					}
					for _, n := range fld.Names {
						docs[ts.Name.Name+"."+n.Name] = text
					}
				}
			}
		}
	}
	return docs, nil
}

// commentText returns a comment group as one line of text.
func commentText(g *ast.CommentGroup) string {
	return strings.Join(strings.Fields(g.Text()), " ")
}

// jsonField is one JSON property of a struct type, as encoding/json writes it.
type jsonField struct {
	Name     string
	Type     reflect.Type
	Required bool // always present: no omitempty/omitzero, not a pointer
	Doc      string
}

// jsonFields lists the JSON properties of struct type t in field order,
// flattening embedded structs as encoding/json does.
func jsonFields(t reflect.Type, docs typeDocs) []jsonField {
	var fs []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			if et := deref(f.Type); et.Kind() == reflect.Struct {
				fs = append(fs, jsonFields(et, docs)...)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		optional := f.Type.Kind() == reflect.Pointer
		for o := range strings.SplitSeq(opts, ",") {
			optional = optional || o == "omitempty" || o == "omitzero"
		}
		fs = append(fs, jsonField{Name: name, Type: f.Type, Required: !optional, Doc: docs[t.Name()+"."+f.Name]})
	}
	return fs
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// schemaGen turns Go types into JSON Schemas (OpenAPI 3.1 dialect). Named
// types of package api become components referenced with $ref.
type schemaGen struct {
	docs       typeDocs
	components map[string]any
}

func newSchemaGen() (*schemaGen, error) {
	docs, err := parseTypeDocs()
	if err != nil {
		return nil, err
	}
	return &schemaGen{docs: docs, components: map[string]any{}}, nil
}

// componentName returns the component a type is declared as, or "" when it
// is written inline.
func componentName(t reflect.Type) string {
	if t.Name() == "" || t == reflect.TypeFor[time.Time]() {
		return ""
	}
	if t.Kind() == reflect.Struct || t.PkgPath() == reflect.TypeFor[Endpoint]().PkgPath() {
		return t.Name()
	}
	return ""
}

// schema returns the schema of t as the daemon writes it: a $ref for a
// component, inline otherwise. A field is required when encoding/json
// always writes it.
func (g *schemaGen) schema(t reflect.Type) map[string]any { return g.gen(t, false) }

// inputSchema returns the schema of t as a request body: encoding/json
// decodes a body with any field left out, so none is required. A type
// whose output schema requires fields gets its own "<Name>-Input"
// component (as pydantic names them), the others are shared.
func (g *schemaGen) inputSchema(t reflect.Type) map[string]any { return g.gen(t, true) }

func (g *schemaGen) gen(t reflect.Type, input bool) map[string]any {
	t = deref(t)
	name := componentName(t)
	if name == "" {
		return g.inline(t, input)
	}
	input = input && requiresFields(t, map[reflect.Type]bool{})
	if input {
		name += "-Input"
	}
	if _, done := g.components[name]; !done {
		g.components[name] = map[string]any{} // guards recursive types
		s := g.inline(t, input)
		if d := g.docs[t.Name()]; d != "" {
			s["description"] = d
		}
		g.components[name] = s
	}
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

// requiresFields reports whether t's output schema, or that of a type in
// it, has required fields.
func requiresFields(t reflect.Type, seen map[reflect.Type]bool) bool {
	t = deref(t)
	switch {
	case seen[t] || t == reflect.TypeFor[time.Time]():
		return false
	case t.Kind() == reflect.Map || t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		return requiresFields(t.Elem(), seen)
	case t.Kind() != reflect.Struct:
		return false
	}
	seen[t] = true
	for _, f := range jsonFields(t, nil) {
		if f.Required || requiresFields(f.Type, seen) {
			return true
		}
	}
	return false
}

// inline returns the schema of t written out.
func (g *schemaGen) inline(t reflect.Type, input bool) map[string]any {
	switch {
	case t == reflect.TypeFor[time.Time]():
		return map[string]any{"type": "string", "format": "date-time"}
	case t == reflect.TypeFor[Duration]():
		return map[string]any{"type": "string", "pattern": durationPattern, "examples": []any{"90s", "10m", "1h30m"}}
	case t.Kind() != reflect.Struct && t.Implements(reflect.TypeFor[encoding.TextMarshaler]()):
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.Struct:
		return g.object(t, input)
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return map[string]any{"type": "object"}
		}
		return map[string]any{"type": "object", "additionalProperties": g.gen(t.Elem(), input)}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": g.gen(t.Elem(), input)}
	case reflect.Interface:
		return map[string]any{"type": "object"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	}
	return map[string]any{} // anything
}

// object returns the schema of a struct type.
func (g *schemaGen) object(t reflect.Type, input bool) map[string]any {
	props := map[string]any{}
	required := []string{}
	for _, f := range jsonFields(t, g.docs) {
		p := g.gen(f.Type, input)
		if f.Doc != "" {
			p["description"] = f.Doc
		}
		props[f.Name] = p
		if f.Required && !input {
			required = append(required, f.Name)
		}
	}
	s := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

// typeLabel names t for people: "string", "[]Launch", "map of string",
// "date-time", "duration".
func typeLabel(t reflect.Type) string {
	t = deref(t)
	switch {
	case t == reflect.TypeFor[time.Time]():
		return "date-time"
	case t == reflect.TypeFor[Duration]():
		return "duration"
	case componentName(t) != "":
		return t.Name()
	}
	switch t.Kind() {
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return "object"
		}
		return "map of " + typeLabel(t.Elem())
	case reflect.Slice, reflect.Array:
		return "[]" + typeLabel(t.Elem())
	case reflect.Interface:
		return "object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Bool:
		return "boolean"
	}
	return t.Kind().String()
}
