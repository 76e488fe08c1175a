package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nbpool/nbpool/api"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printTable prints lists as aligned columns and single objects as
// "key: value" lines.
func printTable(w io.Writer, v any) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	switch v := v.(type) {
	case api.BindingList:
		row("NAME", "IMAGE", "MIN", "MAX", "REDIRECT")
		for _, b := range v.Items {
			row(b.Name, b.Image, strconv.Itoa(b.Pool.Min), strconv.Itoa(b.Pool.Max), b.Redirect)
		}
	case api.LaunchList:
		row("ID", "BINDING", "STATE", "CLAIMED", "LAST ACTIVITY", "ENDED")
		for _, l := range v.Items {
			state := string(l.State)
			if l.EndReason != "" {
				state += " (" + l.EndReason + ")"
			}
			row(l.ID, l.Binding, state, ago(l.Claimed), ago(l.LastActivity), ago(l.Ended))
		}
	case api.PoolList:
		row("BINDING", "RUNNING", "AVAILABLE", "PENDING", "MIN", "MAX", "FAILURES")
		for _, p := range v.Items {
			row(p.Binding, strconv.Itoa(p.Running), strconv.Itoa(p.Available), strconv.Itoa(p.Pending),
				strconv.Itoa(p.MinPool), strconv.Itoa(p.MaxPool), strconv.Itoa(p.Failures))
		}
	default:
		printFields(tw, v)
	}
}

// printFields prints an object's JSON fields, one per line, in the
// struct's order.
func printFields(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintln(w, v)
		return
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		fmt.Fprintln(w, string(b))
		return
	}
	for dec.More() {
		key, _ := dec.Token()
		var raw json.RawMessage
		if dec.Decode(&raw) != nil {
			return
		}
		fmt.Fprintf(w, "%s:\t%s\n", key, strings.Trim(string(raw), `"`))
	}
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

// printError prints an API error with its suggestions.
func printError(w io.Writer, err error) {
	var e *api.Error
	if !errors.As(err, &e) {
		fmt.Fprintln(w, "error:", err)
		return
	}
	fmt.Fprintf(w, "error: %s (%s", e.Message, e.Name)
	if e.Status > 0 {
		fmt.Fprintf(w, ", HTTP %d", e.Status)
	}
	fmt.Fprintln(w, ")")
	for _, s := range e.Suggestions {
		fmt.Fprintln(w, "  try:", s)
	}
}
