package cli

import (
	"fmt"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nbpool/nbpool/api"
)

// clientFlags are the flags every client command has.
type clientFlags struct {
	url, token, output string
	timeout            time.Duration
}

func (f *clientFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.url, "url", envOr("NBPOOL_URL", "http://127.0.0.1:8000"), "nbpool daemon URL (env NBPOOL_URL)")
	fl.StringVar(&f.token, "token", os.Getenv("NBPOOL_TOKEN"), "API token: the admin token or a launch token (env NBPOOL_TOKEN)")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "give up after this long")
}

func (f *clientFlags) client() *api.Client {
	c := api.NewClient(f.url, f.token)
	c.HTTP.Timeout = f.timeout
	return c
}

// checkOutput refuses an unknown -o before any request is made.
func (f *clientFlags) checkOutput() error {
	if f.output != "table" && f.output != "json" {
		return &usageError{fmt.Sprintf("--output must be table or json, not %q", f.output)}
	}
	return nil
}

func (f *clientFlags) print(cmd *cobra.Command, v any) error {
	switch f.output {
	case "json":
		return printJSON(cmd.OutOrStdout(), v)
	case "table", "":
		printTable(cmd.OutOrStdout(), v)
		return nil
	}
	return &usageError{fmt.Sprintf("--output must be table or json, not %q", f.output)}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// extra adds an endpoint's own flags to its command and turns them into the
// request's query and body.
type extra struct {
	use   string // the arguments part of Use, when it differs from the path params
	args  cobra.PositionalArgs
	flags func(cmd *cobra.Command)
	// build returns the query and body of the request.
	build func(cmd *cobra.Command, args []string) (url.Values, any, error)
	// run replaces the generic call (spawn with --wait).
	run func(cmd *cobra.Command, f *clientFlags, ep api.Endpoint, args []string) error
}

// groupShort describes a command group.
func groupShort(group string) string {
	switch group {
	case "bindings":
		return "Manage bindings: environment templates with their pools"
	case "launches":
		return "List, show and stop launches"
	case "pools":
		return "Show and resize warm pools"
	}
	return ""
}

// addClientCommands derives the client commands from the catalog: every
// endpoint with a Command gets one, with its path parameters as arguments.
func addClientCommands(root *cobra.Command) {
	groups := map[string]*cobra.Command{}
	extras := extras()
	for _, ep := range api.Endpoints() {
		words := strings.Fields(ep.Command)
		if len(words) == 0 || strings.HasPrefix(ep.Command, "version") {
			continue
		}
		parent := root
		if len(words) == 2 {
			g := groups[words[0]]
			if g == nil {
				g = &cobra.Command{Use: words[0], Short: groupShort(words[0])}
				groups[words[0]] = g
				root.AddCommand(g)
			}
			parent = g
		}
		parent.AddCommand(endpointCommand(ep, words[len(words)-1], extras[ep.Name]))
	}
}

// endpointCommand builds the command of one endpoint.
func endpointCommand(ep api.Endpoint, verb string, ex extra) *cobra.Command {
	var f clientFlags
	params := ep.PathParams()
	var argNames []string
	for _, p := range params {
		argNames = append(argNames, strings.ToUpper(p.Name))
	}
	use := strings.TrimSpace(verb + " " + strings.Join(argNames, " "))
	if ex.use != "" {
		use = verb + " " + ex.use
	}
	args := ex.args
	if args == nil {
		args = cobra.ExactArgs(len(params))
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: firstSentence(ep.Description),
		Long:  ep.Description + "\n\nAPI: " + ep.Method + " " + ep.Path + authNote(ep.Auth),
		Args: func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return &usageError{fmt.Sprintf("%v; usage: %s", err, cmd.UseLine())}
			}
			return nil
		},
		PreRunE: func(*cobra.Command, []string) error { return f.checkOutput() },
		RunE: func(cmd *cobra.Command, args []string) error {
			if ex.run != nil {
				return ex.run(cmd, &f, ep, args)
			}
			return call(cmd, &f, ep, args, ex)
		},
	}
	f.register(cmd)
	if ex.flags != nil {
		ex.flags(cmd)
	}
	return cmd
}

// call runs an endpoint generically: path params from args, query and body
// from the endpoint's extra, the answer printed.
func call(cmd *cobra.Command, f *clientFlags, ep api.Endpoint, args []string, ex extra) error {
	values := map[string]string{}
	for i, p := range ep.PathParams() {
		if i < len(args) {
			values[p.Name] = args[i]
		}
	}
	var query url.Values
	var body any
	if ex.build != nil {
		var err error
		if query, body, err = ex.build(cmd, args); err != nil {
			return err
		}
	}
	var out any
	if ep.Response != nil {
		out = reflect.New(reflect.TypeOf(ep.Response)).Interface()
	}
	status, err := f.client().Do(cmd.Context(), ep.Name, values, query, body, out)
	if err != nil {
		return err
	}
	if out == nil || status == 204 {
		fmt.Fprintln(cmd.OutOrStdout(), "done:", api.Expand(strings.ToLower(ep.Msg[:1])+ep.Msg[1:], values))
		return nil
	}
	return f.print(cmd, reflect.ValueOf(out).Elem().Interface())
}

func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i]
	}
	return strings.TrimSuffix(s, ".")
}

func authNote(a api.Auth) string {
	switch a {
	case api.AuthAdmin:
		return "\nNeeds the admin token (--token or NBPOOL_TOKEN)."
	case api.AuthLaunch:
		return "\nNeeds the admin token or the launch's token (--token or NBPOOL_TOKEN)."
	}
	return ""
}
