package main

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var s sample
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(101-i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}} {
		if got := s.pct(c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got, want := s.summary(), (summary{N: 100, P50: 50, P90: 90, P99: 99, Max: 100}); got != want {
		t.Errorf("summary = %+v, want %+v", got, want)
	}
	if got := (sample{}).summary(); got != (summary{}) {
		t.Errorf("empty summary = %+v", got)
	}
	if got := (sample{}).pct(50); got != 0 {
		t.Errorf("empty p50 = %v", got)
	}
	if got := median([]float64{3, 1, 2, 10}); got != 2.5 {
		t.Errorf("median = %v, want 2.5", got)
	}
}

func TestRows(t *testing.T) {
	r := ratioRow("x", "req/s", 30, 100, "direct", atLeast, 0.3, "m")
	if r.Ratio == nil || *r.Ratio != 0.3 || r.Met == nil || !*r.Met || r.Target != "≥ 0.3×" {
		t.Errorf("ratio row %+v", r)
	}
	r = ratioRow("x", "ms", 2.5, 1, "direct", atMost, 2, "m")
	if r.Met == nil || *r.Met {
		t.Errorf("2.5× should miss ≤ 2×: %+v", r)
	}
	r = ratioRow("x", "req/s", 1, 1, "nginx", atLeast, 0, "m")
	if r.Met != nil || r.Target != "" {
		t.Errorf("informational row has a target: %+v", r)
	}
	r = absRow("x", "KiB", 70, nanBase, "", atMost, 64, "m")
	if r.Baseline != nil || r.Met == nil || *r.Met || r.Target != "≤ 64 KiB" {
		t.Errorf("abs row %+v", r)
	}
}

func TestMarkdown(t *testing.T) {
	rep := &report{Mode: "quick", Started: time.Unix(0, 0), Commit: "abc", Took: "1m",
		Rows: []row{
			ratioRow("proxy", "req/s", 10, 100, "direct", atLeast, 0.3, "2 CPU"),
			failedRow("memory", errMsg("boom | bang"), "2 CPU"),
		}}
	var b strings.Builder
	rep.markdown(&b)
	md := b.String()
	for _, want := range []string{
		"| scenario | nbpool | baseline | ratio | target | machine |",
		"| proxy | 10 req/s | direct: 100 req/s | 0.100× | ≥ 0.3× ❌ | 2 CPU |",
		`not measured: boom \| bang`,
		"Targets missed in this run: proxy; memory (not measured).",
		"make bench-quick",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

type errMsg string

func (e errMsg) Error() string { return string(e) }

func TestCPUs(t *testing.T) {
	for _, c := range []struct {
		n              int
		client, server string
	}{{1, "", ""}, {2, "1", "0"}, {4, "2-3", "0-1"}, {6, "3-5", "0-2"}} {
		cl, sv := splitCPUs(c.n)
		if cl != c.client || sv != c.server {
			t.Errorf("splitCPUs(%d) = %q, %q; want %q, %q", c.n, cl, sv, c.client, c.server)
		}
	}
	for list, want := range map[string]int{"": 0, "1": 1, "0-1": 2, "0,2-3": 3} {
		if got := cpuCount(list); got != want {
			t.Errorf("cpuCount(%q) = %d, want %d", list, got, want)
		}
	}
}

func TestParseLaunchURL(t *testing.T) {
	id, tok, err := parseLaunchURL("/user/AbC123/tree?token=deadbeef")
	if err != nil || id != "AbC123" || tok != "deadbeef" {
		t.Errorf("got %q %q %v", id, tok, err)
	}
	for _, bad := range []string{"/user//tree?token=x", "/user/abc/tree", "/spawn/abc?token=x"} {
		if _, _, err := parseLaunchURL(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
