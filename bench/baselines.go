package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// backend is one container the proxies route to: its launch path prefix
// ("/user/<id>/") and its address.
type backend struct {
	Prefix string
	Addr   string
}

// helper is a baseline proxy process started by the harness.
type helper struct {
	URL  string // http://127.0.0.1:port
	cmd  *exec.Cmd
	done chan error
}

// stop ends the helper.
func (h *helper) stop() {
	if h != nil && h.cmd != nil && h.cmd.ProcessState == nil {
		stopProcess(h.cmd, h.done, 5*time.Second)
	}
}

// startHelper starts cmd, registers it, and waits until probe answers.
func startHelper(ctx context.Context, e *env, name, addr string, cmd *exec.Cmd, logPath string, probe func(context.Context) error) (*helper, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd.Stdout, cmd.Stderr = lf, lf
	done, err := e.reg.start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	h := &helper{URL: "http://" + addr, cmd: cmd, done: done}
	if err := probe(ctx); err != nil {
		h.stop()
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%s did not come up: %w\n%s", name, err, log)
	}
	return h, nil
}

// startHTTPUtil starts the plain httputil.NewSingleHostReverseProxy (this
// binary's httputil-proxy command) in front of one backend, pinned to the
// proxy CPUs.
func startHTTPUtil(ctx context.Context, e *env, b backend) (*helper, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := command(e.m.ServerCPUs, e.self, "httputil-proxy", "-listen", addr, "-target", "http://"+b.Addr)
	return startHelper(ctx, e, "httputil proxy", addr, cmd, filepath.Join(e.tmp, "httputil-"+addr+".log"),
		func(ctx context.Context) error { return waitHTTP(ctx, "http://"+addr+"/", nil, 0, 10*time.Second) })
}

// runHTTPUtilProxy is the httputil-proxy command: a plain
// httputil.NewSingleHostReverseProxy with its defaults (DefaultTransport,
// two idle connections per host), as a Go programmer would first write it.
func runHTTPUtilProxy(args []string) error {
	fs := flag.NewFlagSet("httputil-proxy", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	target := fs.String("target", "", "backend URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-target %q is not a URL", *target)
	}
	srv := &http.Server{Addr: *listen, Handler: httputil.NewSingleHostReverseProxy(u), ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

var nginxConf = template.Must(template.New("nginx").Parse(`# written by nbpool's bench harness
worker_processes {{.Workers}};
daemon off;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path {{.Dir}}/body;
  proxy_temp_path {{.Dir}}/proxy;
  fastcgi_temp_path {{.Dir}}/fastcgi;
  uwsgi_temp_path {{.Dir}}/uwsgi;
  scgi_temp_path {{.Dir}}/scgi;
{{- range $i, $b := .Backends}}
  upstream b{{$i}} { server {{$b.Addr}}; keepalive 64; }
{{- end}}
  server {
    listen {{.Listen}};
{{- range $i, $b := .Backends}}
    location {{$b.Prefix}} {
      proxy_pass http://b{{$i}};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_buffering off;
      proxy_buffer_size 32k;
      proxy_buffers 4 32k;
    }
{{- end}}
  }
}
`))

// startNginx starts Debian's nginx as a reverse proxy to the backends
// (upstream keep-alive, streaming without buffering, as nbpool does), one
// worker per proxy CPU, pinned to them.
func startNginx(ctx context.Context, e *env, backends []backend) (*helper, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(e.tmp, "nginx-")
	if err != nil {
		return nil, err
	}
	workers := max(1, cpuCount(e.m.ServerCPUs))
	if e.m.ServerCPUs == "" {
		workers = e.m.CPUs
	}
	var conf bytes.Buffer
	if err := nginxConf.Execute(&conf, map[string]any{"Workers": workers, "Dir": dir, "Listen": addr, "Backends": backends}); err != nil {
		return nil, err
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, conf.Bytes(), 0o644); err != nil {
		return nil, err
	}
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return nil, fmt.Errorf("nginx not installed (make deps): %w", err)
	}
	cmd := command(e.m.ServerCPUs, bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	return startHelper(ctx, e, "nginx", addr, cmd, filepath.Join(dir, "stderr.log"),
		func(ctx context.Context) error { return waitHTTP(ctx, "http://"+addr+"/", nil, 0, 10*time.Second) })
}

// chpToken is the API token of the harness's configurable-http-proxy.
const chpToken = "bench-chp-token"

// startCHP starts Debian's configurable-http-proxy pinned to the proxy
// CPUs and adds a route per backend through its REST API. Debian installs
// its modules in /usr/share/nodejs, which a node that is not Debian's own
// (nodesource's) does not search: NODE_PATH points there.
func startCHP(ctx context.Context, e *env, backends []backend) (*helper, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	apiAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	bin, err := exec.LookPath("configurable-http-proxy")
	if err != nil {
		return nil, fmt.Errorf("configurable-http-proxy not installed (make deps): %w", err)
	}
	host, port, _ := strings.Cut(addr, ":")
	apiHost, apiPort, _ := strings.Cut(apiAddr, ":")
	cmd := command(e.m.ServerCPUs, bin, "--ip", host, "--port", port, "--api-ip", apiHost, "--api-port", apiPort,
		"--log-level", "warn")
	cmd.Env = append(os.Environ(), "CONFIGPROXY_AUTH_TOKEN="+chpToken, "NODE_PATH="+nodePath())
	hdr := http.Header{"Authorization": {"token " + chpToken}}
	h, err := startHelper(ctx, e, "configurable-http-proxy", addr, cmd, filepath.Join(e.tmp, "chp.log"),
		func(ctx context.Context) error {
			return waitHTTP(ctx, "http://"+apiAddr+"/api/routes", hdr, http.StatusOK, 30*time.Second)
		})
	if err != nil {
		return nil, err
	}
	for _, b := range backends {
		body, _ := json.Marshal(map[string]string{"target": "http://" + b.Addr})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+apiAddr+"/api/routes"+strings.TrimSuffix(b.Prefix, "/"), bytes.NewReader(body))
		if err != nil {
			h.stop()
			return nil, err
		}
		req.Header = hdr.Clone()
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode != http.StatusCreated {
				err = fmt.Errorf("status %d", res.StatusCode)
			}
		}
		if err != nil {
			h.stop()
			return nil, fmt.Errorf("add CHP route %s: %w", b.Prefix, err)
		}
	}
	return h, nil
}

// nodePath is NODE_PATH with Debian's module folders added.
func nodePath() string {
	parts := []string{"/usr/share/nodejs", "/usr/lib/nodejs"}
	if p := os.Getenv("NODE_PATH"); p != "" {
		parts = append(parts, p)
	}
	return strings.Join(parts, ":")
}
