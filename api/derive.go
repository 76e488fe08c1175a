package api

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
)

// checkCatalog reports what would make the derived artefacts wrong: names
// or routes declared twice, path parameters that do not match the path, and
// examples that are not JSON.
func checkCatalog(eps []Endpoint) error {
	names, routes := map[string]bool{}, map[string]bool{}
	re := regexp.MustCompile(`\{([^{}]+)\}`)
	for _, e := range eps {
		if names[e.Name] {
			return fmt.Errorf("endpoint %s is declared twice", e.Name)
		}
		names[e.Name] = true
		for _, p := range append([]string{e.Path}, e.Aliases...) {
			if routes[e.Method+" "+p] {
				return fmt.Errorf("endpoint %s: route %s %s is declared twice", e.Name, e.Method, p)
			}
			routes[e.Method+" "+p] = true
		}
		var inPath, declared []string
		for _, m := range re.FindAllStringSubmatch(e.Path, -1) {
			inPath = append(inPath, m[1])
		}
		for _, p := range e.PathParams() {
			declared = append(declared, p.Name)
		}
		if !slices.Equal(inPath, declared) {
			return fmt.Errorf("endpoint %s: path %s has parameters %v but declares %v", e.Name, e.Path, inPath, declared)
		}
		if e.Example != "" && !json.Valid([]byte(e.Example)) {
			return fmt.Errorf("endpoint %s: example body is not JSON: %s", e.Name, e.Example)
		}
	}
	return nil
}

// MediaType is the content type of e's success body: ContentType, or
// "application/json" when that is empty.
func (e Endpoint) MediaType() string {
	if e.ContentType == "" {
		return "application/json"
	}
	return e.ContentType
}

// SuccessStatuses returns Success followed by Also.
func (e Endpoint) SuccessStatuses() []int {
	return append([]int{e.Success}, e.Also...)
}

// IsSuccess reports whether status is one of e's success statuses.
func (e Endpoint) IsSuccess(status int) bool {
	return slices.Contains(e.SuccessStatuses(), status)
}

// ErrorsWithStatus returns the errors e may answer with status: its own,
// then the global ones, counting each spec's other Statuses.
func (e Endpoint) ErrorsWithStatus(status int) []ErrorSpec {
	var out []ErrorSpec
	for _, s := range append(slices.Clone(e.Errors), GlobalErrors()...) {
		if hasStatus(s, status) {
			out = append(out, s)
		}
	}
	return out
}

// ErrorStatuses returns the sorted statuses of e's own and the global errors.
func (e Endpoint) ErrorStatuses() []int {
	var out []int
	for _, s := range append(slices.Clone(e.Errors), GlobalErrors()...) {
		out = append(out, s.Status)
		out = append(out, s.Statuses...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// hasStatus reports whether s may carry status.
func hasStatus(s ErrorSpec, status int) bool {
	return s.Status == status || slices.Contains(s.Statuses, status)
}
