package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// row is one line of the results table: nbpool's figure, its baseline's
// (if any), their ratio and the target. Met is nil when the row has no
// target or could not be measured.
type row struct {
	Scenario string   `json:"scenario"`
	Unit     string   `json:"unit"`
	NBPool   float64  `json:"nbpool"`
	Baseline *float64 `json:"baseline,omitempty"`
	// BaselineName says what the baseline is ("direct", "CHP", ...).
	BaselineName string   `json:"baselineName,omitempty"`
	Ratio        *float64 `json:"ratio,omitempty"`
	Target       string   `json:"target,omitempty"`
	Met          *bool    `json:"met,omitempty"`
	Machine      string   `json:"machine"`
	// Error is set when the row could not be measured.
	Error string `json:"error,omitempty"`
}

// cmp is how a figure is held against its target.
type cmp int

const (
	atLeast cmp = iota // figure ≥ want
	atMost             // figure ≤ want
)

func (c cmp) ok(v, want float64) bool {
	if c == atLeast {
		return v >= want
	}
	return v <= want
}

func (c cmp) sign() string {
	if c == atLeast {
		return "≥"
	}
	return "≤"
}

// ratioRow is a row whose target is on nb/base.
func ratioRow(scenario, unit string, nb, base float64, baseName string, c cmp, want float64, machine string) row {
	r := row{Scenario: scenario, Unit: unit, NBPool: nb, Baseline: &base, BaselineName: baseName, Machine: machine,
		Ratio: ratioOf(nb, base)}
	if r.Ratio != nil && want > 0 {
		met := c.ok(*r.Ratio, want)
		r.Met = &met
	}
	if want > 0 {
		r.Target = fmt.Sprintf("%s %s×", c.sign(), trimFloat(want))
	}
	return r
}

// absRow is a row whose target is on nb itself; base may be NaN for none.
func absRow(scenario, unit string, nb, base float64, baseName string, c cmp, want float64, machine string) row {
	r := row{Scenario: scenario, Unit: unit, NBPool: nb, BaselineName: baseName, Machine: machine}
	if !math.IsNaN(base) {
		r.Baseline, r.Ratio = &base, ratioOf(nb, base)
	}
	if want > 0 {
		met := c.ok(nb, want)
		r.Met = &met
		r.Target = fmt.Sprintf("%s %s %s", c.sign(), trimFloat(want), unit)
	}
	return r
}

// ratioOf is nb/base, nil unless base > 0.
func ratioOf(nb, base float64) *float64 {
	if !(base > 0) {
		return nil
	}
	ratio := nb / base
	return &ratio
}

// failedRow records a scenario that could not be measured.
func failedRow(scenario string, err error, machine string) row {
	return row{Scenario: scenario, Error: err.Error(), Machine: machine}
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

// formatValue writes v with its unit at a precision that suits it.
func formatValue(v float64, unit string) string {
	switch unit {
	case "req/s", "round trips/s":
		return fmt.Sprintf("%.0f %s", v, unit)
	case "ms":
		if v < 10 {
			return fmt.Sprintf("%.2f ms", v)
		}
		return fmt.Sprintf("%.1f ms", v)
	case "MiB", "KiB", "containers/s", "s":
		return fmt.Sprintf("%.2f %s", v, unit)
	}
	return fmt.Sprintf("%s %s", trimFloat(v), unit)
}

// report is the whole result of a run, written as latest.md and latest.json.
type report struct {
	Mode    string         `json:"mode"` // full or quick
	Started time.Time      `json:"started"`
	Took    string         `json:"took"`
	Commit  string         `json:"commit"`
	Machine machine        `json:"machine"`
	Rows    []row          `json:"rows"`
	Details map[string]any `json:"details"`
}

// markdown writes the table and the notes under it.
func (r *report) markdown(w io.Writer) {
	fmt.Fprintf(w, "# nbpool benchmark results\n\n")
	fmt.Fprintf(w, "`make %s` · %s · commit %s · took %s\n\n", map[string]string{"full": "bench", "quick": "bench-quick"}[r.Mode],
		r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Commit, r.Took)
	fmt.Fprintf(w, "| scenario | nbpool | baseline | ratio | target | machine |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|\n")
	for _, x := range r.Rows {
		if x.Error != "" {
			fmt.Fprintf(w, "| %s | not measured: %s | | | | %s |\n", x.Scenario, mdEscape(x.Error), x.Machine)
			continue
		}
		base := "—"
		if x.Baseline != nil {
			base = formatValue(*x.Baseline, x.Unit)
			if x.BaselineName != "" {
				base = x.BaselineName + ": " + base
			}
		} else if x.BaselineName != "" {
			base = x.BaselineName
		}
		ratio := "—"
		if x.Ratio != nil {
			ratio = fmt.Sprintf("%.3f×", *x.Ratio)
		}
		target := x.Target
		switch {
		case target == "":
			target = "—"
		case x.Met != nil && *x.Met:
			target += " ✅"
		case x.Met != nil:
			target += " ❌"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", x.Scenario, formatValue(x.NBPool, x.Unit), mdEscape(base),
			ratio, target, x.Machine)
	}
	fmt.Fprintf(w, "\nMachine: %s.\n", r.Machine.String())
	if missed := r.missed(); len(missed) > 0 {
		fmt.Fprintf(w, "\nTargets missed in this run: %s.\n", strings.Join(missed, "; "))
	} else {
		fmt.Fprintf(w, "\nEvery target was met in this run.\n")
	}
	fmt.Fprintf(w, "\nHow each figure is measured: [bench/README.md](../README.md). Raw figures: `latest.json`.\n")
}

// missed lists the rows whose target was missed or that failed.
func (r *report) missed() []string {
	var out []string
	for _, x := range r.Rows {
		switch {
		case x.Error != "":
			out = append(out, x.Scenario+" (not measured)")
		case x.Met != nil && !*x.Met:
			out = append(out, x.Scenario)
		}
	}
	return out
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// write writes latest.md and latest.json into dir (through temp files, so
// an interrupted write leaves the old ones) and returns the markdown.
func (r *report) write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var md strings.Builder
	r.markdown(&md)
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	for name, data := range map[string][]byte{"latest.md": []byte(md.String()), "latest.json": append(js, '\n')} {
		tmp := filepath.Join(dir, name+".tmp")
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return "", err
		}
	}
	return md.String(), nil
}
