package api

import (
	"html"
	"regexp"
	"strings"
	"testing"
)

func docsPageText(t *testing.T) string {
	t.Helper()
	b, err := DocsHTML(OpenAPIInfo{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDocsListsEverything(t *testing.T) {
	page := docsPageText(t)
	text := html.UnescapeString(page)
	var want []string
	for _, e := range Endpoints() {
		want = append(want, `id="`+e.Name+`"`, e.Path, `id="group-`+e.Group+`"`, e.Description)
		for _, s := range e.Errors {
			want = append(want, s.Name, s.Message)
		}
		if e.Command != "" {
			want = append(want, "nbpool "+e.Command)
		}
	}
	for _, s := range append(GlobalErrors(), clientErrors()...) {
		want = append(want, `id="error-`+s.Name+`"`, s.Message)
	}
	want = append(want, `id="global-errors"`, `id="client-errors"`, `id="type-Binding"`, `id="type-Launch"`,
		`id="type-Event"`, `id="type-ErrorBody"`, `id="type-TmpnbFull"`)
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("the page lacks %q", w)
		}
	}
	// Suggestions are there, with their `code` spans as <code>.
	if !strings.Contains(page, "list bindings with <code>nbpool bindings list</code> or GET /api/bindings") {
		t.Error("the suggestions of bindingNotFound are missing or not rendered")
	}
}

func TestDocsCurl(t *testing.T) {
	text := html.UnescapeString(docsPageText(t))
	for _, line := range []string{
		`curl -X POST -H "Authorization: token $NBPOOL_TOKEN" -H 'Content-Type: application/json' -d '{"name": "fake", "image": "nbpool-test/fakenb:latest"`,
		"curl http://127.0.0.1:8000/api/bindings/NAME",
		"curl -I http://127.0.0.1:8000/api/bindings/NAME",
		"curl -N http://127.0.0.1:8000/api/binders/BINDING/ID/events",
		`curl -X DELETE -H "Authorization: token $NBPOOL_TOKEN" http://127.0.0.1:8000/api/binders/BINDING/ID`,
		`curl -X POST -H 'Content-Type: application/json' -d '{"path": "notebooks/intro.ipynb"}' http://127.0.0.1:8000/api/binders/BINDING`,
	} {
		if !strings.Contains(text, line) {
			t.Errorf("the page lacks the curl line %q", line)
		}
	}
	if got := shellQuote(`{"a": "it's"}`); got != `'{"a": "it'\''s"}'` {
		t.Errorf("shellQuote = %s", got)
	}
}

func TestDocsEscapes(t *testing.T) {
	page := docsPageText(t)
	// Descriptions hold "<id>" and quotes: they must arrive as text.
	if strings.Contains(page, "<id>") || !strings.Contains(page, "/user/&lt;id&gt;/") {
		t.Error("<id> in a description is not escaped")
	}
	if got := string(codeSpans("`a<b>` & <i>x</i> `c`")); got != "<code>a&lt;b&gt;</code> &amp; &lt;i&gt;x&lt;/i&gt; <code>c</code>" {
		t.Errorf("codeSpans = %s", got)
	}
	if got := string(codeSpans("one ` unbalanced <b>")); got != "one ` unbalanced &lt;b&gt;" {
		t.Errorf("codeSpans of an unbalanced string = %s", got)
	}
}

func TestDocsSelfContained(t *testing.T) {
	page := docsPageText(t)
	for _, bad := range []string{"<script", "<link", "src=", "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("the page contains %q: it must need nothing else", bad)
		}
	}
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(`id="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		if ids[m[1]] {
			t.Errorf("id %q appears twice", m[1])
		}
		ids[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`href="#([^"]+)"`).FindAllStringSubmatch(page, -1) {
		if !ids[m[1]] {
			t.Errorf("link to #%s, which is not on the page", m[1])
		}
	}
}
