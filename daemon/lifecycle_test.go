package daemon_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nbpool/nbpool/api"
	"github.com/nbpool/nbpool/daemon/daemontest"
)

// Done when 1: a claimed launch with no traffic is culled after idleTimeout,
// counted from the claim (its container was older than that already); one
// with traffic is not, until the traffic stops; one older than maxAge is
// culled despite its traffic. The reasons are recorded, the culled
// containers go, the pools refill, and available containers, idle for longer
// than idleTimeout, are never culled.
func TestCullIdleAndAgeButNeverAvailable(t *testing.T) {
	const idle, maxAge = 2 * time.Second, 4 * time.Second
	cfg := daemontest.Config(t, 2)
	cfg.Cull.Period = api.Duration(200 * time.Millisecond)
	fake := daemontest.FakeBinding("fake", 2)
	fake.Cull = api.Cull{IdleTimeout: api.Duration(idle)} // maxAge: the default, 4h
	aged := daemontest.FakeBinding("aged", 1)
	aged.Cull = api.Cull{IdleTimeout: api.Duration(idle), MaxAge: api.Duration(maxAge)}
	cfg.Bindings = []api.Binding{fake, aged}
	d := daemontest.Start(t, cfg)
	d.WaitPool(t, "fake", 2, 30*time.Second)
	d.WaitPool(t, "aged", 1, 30*time.Second)
	// The warm containers outlive the idle timeout before anyone claims
	// them: an idle clock started at creation (tmpnb's) would cull at once.
	time.Sleep(idle + 500*time.Millisecond)

	quiet := claimWarm(t, d.Client, "fake")
	active := claimWarm(t, d.Client, "fake")
	old := claimWarm(t, d.Client, "aged")
	stopActive := busy(d.URL, 250*time.Millisecond, active)
	stopOld := busy(d.URL, 250*time.Millisecond, old)
	defer stopOld()
	d.WaitPool(t, "fake", 2, 30*time.Second)
	d.WaitPool(t, "aged", 1, 30*time.Second)
	available := launchesIn(t, d.Client, "available", "fake", "aged")

	q := waitEnded(t, d.Client, "fake", quiet.ID, idle+5*time.Second)
	wantCulled(t, q, api.EndCulledIdle, idle)
	o := waitEnded(t, d.Client, "aged", old.ID, maxAge+5*time.Second)
	wantCulled(t, o, api.EndCulledAge, maxAge)

	// Claimed for longer than maxAge of aged and idleTimeout of fake, but
	// busy all along: still there and opening.
	if l, err := d.Client.Launch(context.Background(), "fake", active.ID); err != nil || l.State != api.StateClaimed {
		t.Fatalf("the launch with traffic was ended: %+v %v", l, err)
	}
	wantOpens(t, d.URL, active)
	stopActive()
	quietSince := time.Now()
	a := waitEnded(t, d.Client, "fake", active.ID, idle+5*time.Second)
	if a.EndReason != api.EndCulledIdle || time.Since(quietSince) < idle-300*time.Millisecond {
		t.Fatalf("after its traffic stopped: want culled-idle after %s, have %q after %s", idle, a.EndReason, time.Since(quietSince))
	}
	t.Logf("culled-idle %s after its traffic stopped (idleTimeout %s, period %s)", time.Since(quietSince).Round(time.Millisecond), idle, cfg.Cull.Period.D())

	for _, l := range []api.Launch{quiet, old, active} {
		if code, err := open(context.Background(), d.URL, statusPath(l)); err != nil || code == http.StatusOK {
			t.Errorf("culled launch %s still opens: %d %v", l.ID, code, err)
		}
	}
	// Idle for several idleTimeouts by now, every available launch is still
	// there; the pools are full and the culled containers are gone.
	still := launchesIn(t, d.Client, "available", "fake", "aged")
	for id := range available {
		if !still[id] {
			t.Errorf("available launch %s was culled or ended", id)
		}
	}
	d.WaitPool(t, "fake", 2, 30*time.Second)
	d.WaitPool(t, "aged", 1, 30*time.Second)
	waitContainers(t, cfg.Instance, 3)
}

// wantCulled checks a culled launch's reason and that it lived for about
// limit after its claim (the culler looks every 200ms).
func wantCulled(t *testing.T, l api.Launch, reason string, limit time.Duration) {
	t.Helper()
	lived := l.Ended.Sub(l.Claimed)
	if l.EndReason != reason || lived < limit || lived > limit+time.Second {
		t.Fatalf("launch %s: want %s after %s, have %q after %s", l.ID, reason, limit, l.EndReason, lived)
	}
	t.Logf("%s %s after the claim (limit %s)", reason, lived.Round(time.Millisecond), limit)
}

// launchesIn returns the ids of the launches in state of the bindings.
func launchesIn(t *testing.T, c *api.Client, state string, bindings ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, b := range bindings {
		list, err := c.ListLaunches(context.Background(), b, state)
		if err != nil {
			t.Fatalf("list %s launches of %s: %v", state, b, err)
		}
		for _, l := range list.Items {
			out[l.ID] = true
		}
	}
	return out
}

// Done when 2: `docker kill` of a container ends its launch within 2 s
// (reason died), its route goes, the dead container is removed and the pool
// refills. Claimed and available containers alike.
func TestDockerKillEndsLaunch(t *testing.T) {
	cfg := daemontest.Config(t, 2)
	d := daemontest.Start(t, cfg)
	ctx := context.Background()
	for _, state := range []api.State{api.StateClaimed, api.StateAvailable} {
		t.Run(string(state), func(t *testing.T) {
			d.WaitPool(t, "fake", 2, 30*time.Second)
			var l api.Launch
			if state == api.StateClaimed {
				l = claimWarm(t, d.Client, "fake")
				d.WaitPool(t, "fake", 2, 30*time.Second)
				wantOpens(t, d.URL, l)
			} else {
				list, err := d.Client.ListLaunches(ctx, "fake", "available")
				if err != nil || len(list.Items) == 0 {
					t.Fatalf("no available launch: %+v %v", list, err)
				}
				l = list.Items[0]
			}
			start := time.Now()
			dockerKill(t, l.ContainerID)
			killed := time.Since(start)
			ended := waitEnded(t, d.Client, "fake", l.ID, 5*time.Second)
			took := time.Since(start)
			t.Logf("%s launch: docker kill returned after %s, launch ended %s after the kill began (reason %s)",
				state, killed.Round(time.Millisecond), took.Round(time.Millisecond), ended.EndReason)
			if ended.EndReason != api.EndDied || took > 2*time.Second {
				t.Fatalf("want died within 2s, have %q after %s", ended.EndReason, took)
			}
			if code, err := open(ctx, d.URL, statusPath(l)); err != nil || code == http.StatusOK {
				t.Errorf("the killed launch still opens: %d %v", code, err)
			}
			p := d.WaitPool(t, "fake", 2, 30*time.Second)
			for _, c := range daemontest.Containers(t, cfg.Instance) {
				if c.Launch == l.ID {
					t.Errorf("the killed container %s is still there (%s)", c.Name, c.Status)
				}
			}
			waitContainers(t, cfg.Instance, 2+p.Running)
		})
	}
}
