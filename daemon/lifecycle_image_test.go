package daemon_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon/daemontest"
)

// nbpool's own image, as the README runs it (host network, the Docker
// socket mounted, its group added, non-root), serves: health, a warm
// launch that opens through its proxy, and a `docker stop` that exits 0 and
// leaves the launch's container running. make test builds the image first
// (contrib/build-image.sh, about 5 minutes on 2 cores without a cache) and
// names it in NBPOOL_TEST_IMAGE; without that, the test builds it itself.
func TestDockerImageServes(t *testing.T) {
	daemontest.RequireEngine(t)
	image := os.Getenv("NBPOOL_TEST_IMAGE")
	if image == "" {
		image = "nbpool-test/nbpool:latest"
		t.Logf("NBPOOL_TEST_IMAGE is not set: building %s (make test builds it before the tests)", image)
		build := exec.Command("../contrib/build-image.sh", image)
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", image, err, out)
		}
	}
	socket := "/var/run/docker.sock"
	out, err := exec.Command("stat", "-c", "%g", socket).Output()
	if err != nil {
		t.Fatalf("the image test mounts %s: %v", socket, err)
	}
	gid := strings.TrimSpace(string(out)) // the socket's group, as the README's --group-add

	cfg := daemontest.Config(t, 1)
	cfg.Listen = daemontest.FreeAddr(t)
	cfg.Store = "/var/lib/nbpool/nbpool.db" // the image's NBPOOL_* env sets store and listen anyway
	conf := filepath.Join(t.TempDir(), "nbpool.yaml")
	data, err := os.ReadFile(daemontest.WriteConfig(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, data, 0o644); err != nil { // read by uid 65532
		t.Fatal(err)
	}
	name := "nbpool-image-" + cfg.Instance
	out, err = exec.Command("docker", "run", "-d", "--name", name, "--network", "host",
		"-v", socket+":/var/run/docker.sock", "--group-add", gid,
		"-v", conf+":/etc/nbpool.yaml:ro", "-e", "NBPOOL_LISTEN="+cfg.Listen, image, "serve", "--config", "/etc/nbpool.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run %s: %v\n%s", image, err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("docker", "rm", "-f", "-v", name).Run()
		daemontest.RemoveInstance(t, cfg.Instance)
	})
	logs := func() string { b, _ := exec.Command("docker", "logs", name).CombinedOutput(); return string(b) }

	base := "http://" + cfg.Listen
	c := api.NewClient(base, daemontest.AdminToken)
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err := c.Health(context.Background())
		if err == nil && h.Status == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the containerized daemon does not answer /api/health: %+v %v\n%s", h, err, logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitPool(t, c, "fake", 1, 30*time.Second)
	l := claimWarm(t, c, "fake")
	wantOpens(t, base, l)
	user, _ := exec.Command("docker", "inspect", "--format", "{{.Config.User}}", name).Output()
	t.Logf("image %s serves as user %s with group %s", image, strings.TrimSpace(string(user)), gid)

	stop := time.Now()
	if out, err := exec.Command("docker", "stop", "-t", "30", name).CombinedOutput(); err != nil {
		t.Fatalf("docker stop: %v\n%s", err, out)
	}
	code, _ := exec.Command("docker", "inspect", "--format", "{{.State.ExitCode}}", name).Output()
	t.Logf("docker stop took %s, exit code %s", time.Since(stop).Round(time.Millisecond), strings.TrimSpace(string(code)))
	if strings.TrimSpace(string(code)) != "0" {
		t.Errorf("exit code after docker stop: %s\n%s", code, logs())
	}
	for _, ct := range daemontest.Containers(t, cfg.Instance) {
		if ct.Launch == l.ID && !ct.Running {
			t.Errorf("the claimed launch's container stopped with the daemon")
		}
	}
	if resp, err := http.Get(base + "/api/health"); err == nil {
		resp.Body.Close()
		t.Errorf("the daemon still answers after docker stop")
	}
}
