package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
	"golang.org/x/term"

	"github.com/nbpool/nbpool/api"
)

// extras returns the endpoint-specific flags of the client commands.
func extras() map[string]extra {
	file := func(cmd *cobra.Command) {
		cmd.Flags().StringP("file", "f", "", "binding definition, YAML or JSON ('-' for stdin)")
		_ = cmd.MarkFlagRequired("file")
	}
	readBinding := func(cmd *cobra.Command, args []string) (url.Values, any, error) {
		path, _ := cmd.Flags().GetString("file")
		b, err := readBindingFile(path)
		return nil, b, err
	}
	return map[string]extra{
		"bindings.create": {flags: file, build: readBinding},
		"bindings.put": {use: "-f FILE", args: cobra.NoArgs, flags: file,
			run: func(cmd *cobra.Command, f *clientFlags, ep api.Endpoint, _ []string) error {
				path, _ := cmd.Flags().GetString("file")
				b, err := readBindingFile(path)
				if err != nil {
					return err
				}
				return call(cmd, f, ep, []string{b.Name}, extra{build: func(*cobra.Command, []string) (url.Values, any, error) {
					return nil, b, nil
				}})
			}},
		"bindings.delete": {
			flags: func(cmd *cobra.Command) {
				cmd.Flags().Bool("force", false, "also end the binding's claimed launches")
			},
			build: func(cmd *cobra.Command, _ []string) (url.Values, any, error) {
				if force, _ := cmd.Flags().GetBool("force"); force {
					return url.Values{"force": {"true"}}, nil, nil
				}
				return nil, nil, nil
			},
		},
		"binders.list": {
			use: "[BINDING]", args: cobra.MaximumNArgs(1),
			flags: func(cmd *cobra.Command) {
				cmd.Flags().String("state", "", "warming, available, claimed, live (default) or ended")
			},
			run: listLaunches,
		},
		"pools.set": {
			flags: func(cmd *cobra.Command) {
				cmd.Flags().Int("min", 0, "warm containers to keep available")
				cmd.Flags().Int("max", 0, "most containers of the binding (0: only the capacity bounds it)")
			},
			build: func(cmd *cobra.Command, _ []string) (url.Values, any, error) {
				var up api.PoolUpdate
				if cmd.Flags().Changed("min") {
					v, _ := cmd.Flags().GetInt("min")
					up.MinPool = &v
				}
				if cmd.Flags().Changed("max") {
					v, _ := cmd.Flags().GetInt("max")
					up.MaxPool = &v
				}
				if up.MinPool == nil && up.MaxPool == nil {
					return nil, nil, &usageError{"pools set needs --min, --max or both"}
				}
				return nil, up, nil
			},
		},
		"binders.spawn": {
			use: "[BINDING]", args: cobra.MaximumNArgs(1),
			flags: func(cmd *cobra.Command) {
				cmd.Flags().Bool("wait", false, "wait until a cold start is ready, showing progress")
				cmd.Flags().String("path", "", "open this path instead of the binding's redirect")
			},
			run: spawn,
		},
	}
}

// readBindingFile reads a binding definition in YAML or JSON.
func readBindingFile(path string) (api.Binding, error) {
	var b api.Binding
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return b, err
	}
	if json.Valid(data) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		err = dec.Decode(&b)
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		err = dec.Decode(&b)
	}
	if err != nil {
		return b, fmt.Errorf("read binding from %s: %w", path, err)
	}
	return b, nil
}

// spawn launches on a binding; with --wait it follows a cold start with a
// progress line until the notebook is ready. Without a binding it uses the
// server's default binding (tmpnb's /api/spawn/, which waits itself).
func spawn(cmd *cobra.Command, f *clientFlags, ep api.Endpoint, args []string) error {
	c := f.client()
	ctx := cmd.Context()
	errw := cmd.ErrOrStderr()
	if path, _ := cmd.Flags().GetString("path"); path != "" && len(args) == 0 {
		return &usageError{"--path needs a BINDING: nbpool spawn BINDING --path " + path}
	}
	if len(args) == 0 {
		fmt.Fprintln(errw, "Launching a notebook on the default binding")
		r, err := c.TmpnbSpawn(ctx, api.TmpnbSpawnRequest{})
		if err != nil {
			return err
		}
		if f.output != "json" {
			r.URL = absolute(f.url, r.URL)
		}
		return f.print(cmd, r)
	}
	binding := args[0]
	path, _ := cmd.Flags().GetString("path")
	wait, _ := cmd.Flags().GetBool("wait")
	fmt.Fprintln(errw, api.Expand(ep.Msg, map[string]string{"binding": binding}))
	l, status, err := c.Spawn(ctx, binding, api.SpawnRequest{Path: path})
	if err != nil {
		return err
	}
	if status == 202 && wait {
		// Follow with the launch's own token: it reveals the URL.
		lc := *c
		lc.Token = l.Token
		tty := false
		if fd, ok := errw.(*os.File); ok {
			tty = term.IsTerminal(int(fd.Fd()))
		}
		var final api.Event
		err := lc.Events(ctx, binding, l.ID, func(ev api.Event) error {
			line := fmt.Sprintf("[%3d%%] %s", ev.Progress, ev.Message)
			if tty {
				fmt.Fprintf(errw, "\r\033[K%s", line)
			} else {
				fmt.Fprintln(errw, line)
			}
			if ev.Ready || ev.Failed {
				final = ev
				return errStop
			}
			return nil
		})
		if tty {
			fmt.Fprintln(errw)
		}
		if err != nil && !errors.Is(err, errStop) {
			return err
		}
		if final.Failed {
			e := api.ErrSpawnFailed.New("binding", binding, "reason", final.Message)
			e.Status = 0 // reported by the event stream, not by an HTTP status
			return e
		}
		if l, err = lc.Launch(ctx, binding, l.ID); err != nil {
			return err
		}
	}
	if status == 202 && !wait {
		fmt.Fprintf(errw, "Starting (cold start): follow it with `nbpool launches get %s %s --token %s`\n", binding, l.ID, l.Token)
	}
	if f.output != "json" && l.URL != "" {
		l.URL = absolute(f.url, l.URL)
	}
	return f.print(cmd, l)
}

// absolute makes a path the API returned clickable: base + path.
func absolute(base, path string) string {
	if !strings.HasPrefix(path, "/") {
		return path
	}
	return strings.TrimRight(base, "/") + path
}

// errStop ends an event stream early.
var errStop = errors.New("stop")

// listLaunches lists the launches of one binding, or of every binding when
// none is named (one binders.list call per binding, in the server's order).
func listLaunches(cmd *cobra.Command, f *clientFlags, ep api.Endpoint, args []string) error {
	state, _ := cmd.Flags().GetString("state")
	c := f.client()
	bindings := args
	if len(args) == 0 {
		all, err := c.ListBindings(cmd.Context())
		if err != nil {
			return err
		}
		for _, b := range all.Items {
			bindings = append(bindings, b.Name)
		}
	}
	out := api.LaunchList{Items: []api.Launch{}}
	for _, b := range bindings {
		l, err := c.ListLaunches(cmd.Context(), b, state)
		if err != nil {
			return err
		}
		out.Items = append(out.Items, l.Items...)
	}
	return f.print(cmd, out)
}
