// Package cli holds nbpool's commands: serve, version and the API client
// commands derived from the api catalog. It is the only package that
// imports cobra.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon"
)

// Exit codes.
const (
	exitOK     = 0
	exitError  = 1
	exitConfig = 2
)

// Execute runs the command line and returns the process exit code.
func Execute(version, commit string) int {
	info := api.Version{Version: version, Commit: commit, GoVersion: runtime.Version(), API: "1"}
	root := newRoot(info)
	err := root.ExecuteContext(context.Background())
	if err == nil {
		return exitOK
	}
	var cfgErr *daemon.ConfigError
	if errors.As(err, &cfgErr) {
		fmt.Fprintln(os.Stderr, "nbpool:", err)
		return exitConfig
	}
	var usage *usageError
	if errors.As(err, &usage) || strings.HasPrefix(err.Error(), "unknown command") {
		fmt.Fprintln(os.Stderr, "nbpool:", err)
		return exitConfig
	}
	printError(os.Stderr, err)
	return exitError
}

// usageError is a wrong command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func newRoot(info api.Version) *cobra.Command {
	root := &cobra.Command{
		Use:   "nbpool",
		Short: "Instant Jupyter notebooks from warm container pools on a Docker host",
		Long: "nbpool keeps pools of ready notebook containers on the local Docker engine and hands one out\n" +
			"in milliseconds, behind its own reverse proxy. `nbpool serve` runs the daemon; the other\n" +
			"commands talk to a running daemon through its API.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	root.AddCommand(newServeCmd(info), newVersionCmd(info))
	addClientCommands(root)
	return root
}

func newVersionCmd(info api.Version) *cobra.Command {
	var server bool
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print nbpool's version (and the server's with --server)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "nbpool %s", info.Version)
			if info.Commit != "" {
				fmt.Fprintf(cmd.OutOrStdout(), " (%s)", info.Commit)
			}
			fmt.Fprintf(cmd.OutOrStdout(), " %s\n", info.GoVersion)
			if !server {
				return nil
			}
			v, err := cf.client().ServerVersion(cmd.Context())
			if err != nil {
				return err
			}
			return cf.print(cmd, v)
		},
	}
	cmd.Flags().BoolVar(&server, "server", false, "also ask the running daemon for its version")
	cf.register(cmd)
	return cmd
}
