package cli

import (
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon"
)

func newServeCmd(info api.Version) *cobra.Command {
	var configPath, listen, storePath, logLevel string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the nbpool daemon",
		Long: "Run the nbpool daemon: warm pools on the local Docker engine, the notebook proxy at /user/<id>/\n" +
			"and the API at /api/. Configuration: the YAML file (see config.example.yaml), NBPOOL_* environment\n" +
			"variables over it, and these flags over both. With no file it serves one binding, jupyter.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := daemon.LoadConfig(configPath, os.Getenv)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("listen") {
				cfg.Listen = listen
			}
			if cmd.Flags().Changed("store") {
				cfg.Store = storePath
			}
			if cmd.Flags().Changed("log-level") {
				cfg.Log.Level = logLevel
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			log, err := newLogger(cfg.Log)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			hooks := daemon.Hooks{
				Ready: func(net.Addr) {
					if err := daemon.Notify("READY=1"); err != nil {
						log.Warn().Err(err).Msg("systemd notify")
					}
				},
				Stopping: func() { _ = daemon.Notify("STOPPING=1") },
			}
			return daemon.Run(ctx, cfg, log, info, hooks)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&configPath, "config", "c", os.Getenv("NBPOOL_CONFIG"), "YAML config file (env NBPOOL_CONFIG)")
	f.StringVar(&listen, "listen", "", "address to listen on, host:port (default 127.0.0.1:8000)")
	f.StringVar(&storePath, "store", "", "bbolt store file (default ./nbpool.db)")
	f.StringVar(&logLevel, "log-level", "", "debug, info, warn or error (default info)")
	return cmd
}

// newLogger logs to stderr: human-readable on a terminal, JSON otherwise.
func newLogger(c daemon.LogConfig) (zerolog.Logger, error) {
	level := zerolog.InfoLevel
	if c.Level != "" {
		l, err := zerolog.ParseLevel(strings.ToLower(c.Level))
		if err != nil {
			return zerolog.Logger{}, &daemon.ConfigError{Key: "log.level", Msg: "must be debug, info, warn or error, not " + c.Level}
		}
		level = l
	}
	console := c.Format == "console" || (c.Format == "auto" && term.IsTerminal(int(os.Stderr.Fd())))
	var log zerolog.Logger
	if console {
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"})
	} else {
		log = zerolog.New(os.Stderr)
	}
	return log.Level(level).With().Timestamp().Logger(), nil
}
