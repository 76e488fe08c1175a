package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon/daemontest"
)

// Done when 5: every bad input is answered with the right status, error
// name and a suggestion, and changes nothing.
func TestBadInputChangesNothing(t *testing.T) {
	d := daemontest.Start(t, daemontest.Config(t, 1))
	d.WaitPool(t, "fake", 1, 30*time.Second)
	ctx := context.Background()
	if _, _, err := d.Client.Spawn(ctx, "fake", api.SpawnRequest{}); err != nil {
		t.Fatal(err)
	}
	d.WaitPool(t, "fake", 1, 30*time.Second)

	const img = `"image": "nbpool-test/fakenb:latest"`
	huge := `{"name": "huge", ` + img + `, "env": {"X": "` + strings.Repeat("x", 1<<20) + `"}}`
	admin := "token " + daemontest.AdminToken
	cases := []struct {
		name, method, path, body, auth string
		status                         int
		errName                        string
	}{
		{"malformed JSON", "POST", "/api/bindings", `{"name": `, admin, 400, "malformedRequest"},
		{"unknown field", "POST", "/api/bindings", `{"name": "x", ` + img + `, "bogus": 1}`, admin, 422, "malformedRequest"},
		{"wrong type", "POST", "/api/bindings", `{"name": 5, ` + img + `}`, admin, 422, "malformedRequest"},
		{"two values", "POST", "/api/bindings", `{"name": "a", ` + img + `} {}`, admin, 400, "malformedRequest"},
		{"empty body", "POST", "/api/bindings", ``, admin, 400, "malformedRequest"},
		{"upper-case name", "POST", "/api/bindings", `{"name": "Bad_Name", ` + img + `}`, admin, 422, "invalidName"},
		{"name too long", "POST", "/api/bindings", `{"name": "` + strings.Repeat("a", 64) + `", ` + img + `}`, admin, 422, "invalidName"},
		{"name with leading dash", "POST", "/api/bindings", `{"name": "-x", ` + img + `}`, admin, 422, "invalidName"},
		{"body over 1 MiB", "POST", "/api/bindings", huge, admin, 413, "tooLarge"},
		{"negative pool", "POST", "/api/bindings", `{"name": "neg", ` + img + `, "pool": {"min": -1}}`, admin, 422, "invalidPool"},
		{"min over max", "POST", "/api/bindings", `{"name": "inc", ` + img + `, "pool": {"min": 5, "max": 2}}`, admin, 422, "invalidPool"},
		{"min over capacity", "POST", "/api/bindings", `{"name": "cap", ` + img + `, "pool": {"min": 1000}}`, admin, 422, "invalidPool"},
		{"image does not parse", "POST", "/api/bindings", `{"name": "img", "image": "UPPER/Case::bad"}`, admin, 422, "invalidImage"},
		{"empty image", "POST", "/api/bindings", `{"name": "img"}`, admin, 422, "invalidImage"},
		{"bad memory limit", "POST", "/api/bindings", `{"name": "mem", ` + img + `, "limits": {"memory": "lots"}}`, admin, 422, "invalidBinding"},
		{"existing name", "POST", "/api/bindings", `{"name": "fake", ` + img + `}`, admin, 409, "bindingExists"},
		{"name differs from path", "PUT", "/api/bindings/other", `{"name": "fake", ` + img + `}`, admin, 422, "invalidBinding"},
		{"pool negative", "PUT", "/api/pools/fake", `{"minPool": -1}`, admin, 422, "invalidPool"},
		{"pool min over max", "PUT", "/api/pools/fake", `{"minPool": 5, "maxPool": 2}`, admin, 422, "invalidPool"},
		{"pool over capacity", "POST", "/api/pools/fake", `{"minPool": 1000}`, admin, 422, "invalidPool"},
		{"pool nothing set", "PUT", "/api/pools/fake", `{}`, admin, 422, "invalidPool"},
		{"pool wrong type", "PUT", "/api/pools/fake", `{"minPool": "8"}`, admin, 422, "malformedRequest"},
		{"pool of no binding", "PUT", "/api/pools/nope", `{"minPool": 1}`, admin, 404, "bindingNotFound"},
		{"delete with claimed launch", "DELETE", "/api/bindings/fake", ``, admin, 409, "bindingInUse"},
		{"delete missing binding", "DELETE", "/api/bindings/nope", ``, admin, 404, "bindingNotFound"},
		{"no token", "POST", "/api/bindings", `{"name": "x", ` + img + `}`, "", 401, "unauthorized"},
		{"wrong token", "PUT", "/api/pools/fake", `{"minPool": 3}`, "token wrong", 403, "unauthorized"},
		{"spawn unknown field", "POST", "/api/binders/fake", `{"bogus": true}`, "", 422, "malformedRequest"},
		{"spawn on missing binding", "POST", "/api/binders/nope", ``, "", 404, "bindingNotFound"},
	}

	before := snapshot(t, d)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, d.URL+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var body api.ErrorBody
			if err := json.Unmarshal(raw, &body); err != nil || body.Error == nil {
				t.Fatalf("status %d, body is not the error shape: %s", resp.StatusCode, raw)
			}
			e := body.Error
			if resp.StatusCode != tc.status || e.Status != tc.status || e.Name != tc.errName {
				t.Fatalf("want %d %s, have %d %s (%s)", tc.status, tc.errName, resp.StatusCode, e.Name, e.Message)
			}
			if e.Message == "" || len(e.Suggestions) == 0 {
				t.Fatalf("error without message or suggestions: %s", raw)
			}
		})
	}
	if after := snapshot(t, d); !reflect.DeepEqual(before, after) {
		t.Fatalf("bad input changed the store:\nbefore %+v\nafter  %+v", before, after)
	}
}

// state is what bad input must not change: the bindings and pool sizes.
type state struct {
	Bindings []api.Binding
	Sizes    map[string][2]int
}

func snapshot(t *testing.T, d *daemontest.Daemon) state {
	t.Helper()
	ctx := context.Background()
	bs, err := d.Client.ListBindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := d.Client.ListPools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := state{Bindings: bs.Items, Sizes: map[string][2]int{}}
	for _, p := range ps.Items {
		s.Sizes[p.Binding] = [2]int{p.MinPool, p.MaxPool}
	}
	return s
}
