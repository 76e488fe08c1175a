package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nbpool/nbpool/api"
)

// t0 is a fixed time the tests build launches around.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// openStore opens a store in a fresh directory and closes it when the test
// ends.
func openStore(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "nbpool.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// reopen closes s and opens its file again.
func reopen(t *testing.T, s *Store, opts Options) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2, err := Open(t.Context(), s.Path(), opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	return s2
}

// launch returns a launch of binding in state, created at t0 plus created.
func launch(id, binding string, state api.State, created time.Duration) api.Launch {
	l := api.Launch{
		ID: id, Binding: binding, State: state,
		Location: "/user/" + id + "/", URI: "/api/binders/" + binding + "/" + id,
		Token: "tok-" + id, Created: t0.Add(created),
	}
	if state == api.StateEnded {
		l.Ended = l.Created.Add(time.Minute)
		l.EndReason = api.EndStopped
	}
	return l
}

func TestOpenCreatesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "dir", "nbpool.db")
	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("the file was not created: %v", err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("file mode %o, want 600: the file holds launch tokens", mode)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		if got := string(tx.Bucket([]byte(bucketMeta)).Get([]byte(schemaKey))); got != "1" {
			t.Errorf("schema = %q, want 1", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefuses(t *testing.T) {
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		opts    Options
		prepare func(t *testing.T, path string) // makes the file Open meets
		want    error                           // nil: any error
	}{
		{name: "cancelled context", ctx: cancelled, want: context.Canceled},
		{name: "negative retention", opts: Options{Retention: -time.Hour}},
		{
			name: "newer schema",
			prepare: func(t *testing.T, path string) {
				writeRaw(t, path, func(tx *bolt.Tx) error {
					return tx.Bucket([]byte(bucketMeta)).Put([]byte(schemaKey), []byte("2"))
				})
			},
			want: ErrNewerSchema,
		},
		{
			name: "garbled schema",
			prepare: func(t *testing.T, path string) {
				writeRaw(t, path, func(tx *bolt.Tx) error {
					return tx.Bucket([]byte(bucketMeta)).Put([]byte(schemaKey), []byte("one"))
				})
			},
		},
		{
			name: "another program's bbolt file",
			prepare: func(t *testing.T, path string) {
				db, err := bolt.Open(path, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if err := db.Update(func(tx *bolt.Tx) error {
					_, err := tx.CreateBucket([]byte("widgets"))
					return err
				}); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "not a bbolt file",
			prepare: func(t *testing.T, path string) {
				if err := os.WriteFile(path, []byte("not a database, but 4096 bytes are needed to say so"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "nbpool.db")
			if tt.prepare != nil {
				tt.prepare(t, path)
			}
			before, _ := os.ReadFile(path)
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			s, err := Open(ctx, path, tt.opts)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Open: %v, want %v", err, tt.want)
			}
			if after, _ := os.ReadFile(path); !reflect.DeepEqual(before, after) {
				t.Error("a refused Open changed the file")
			}
		})
	}
}

// writeRaw creates a store at path, then changes it with fn through bbolt
// directly, as another version of nbpool might have.
func writeRaw(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateBinding(t.Context(), api.Binding{Name: "keep", Image: "img"}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenLocked(t *testing.T) {
	s := openStore(t, Options{})
	const timeout = 300 * time.Millisecond
	start := time.Now()
	s2, err := Open(t.Context(), s.Path(), Options{LockTimeout: timeout})
	elapsed := time.Since(start)
	if err == nil {
		s2.Close()
		t.Fatal("a second Open of an open store succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("second Open: %v, want ErrLocked", err)
	}
	if elapsed > timeout+200*time.Millisecond {
		t.Errorf("second Open gave up after %s, want about %s", elapsed, timeout)
	}
	// The first Store still works, and the file opens once it is closed.
	if _, err := s.CreateBinding(t.Context(), api.Binding{Name: "b", Image: "img"}); err != nil {
		t.Fatalf("first store after a refused Open: %v", err)
	}
	s = reopen(t, s, Options{LockTimeout: timeout})
	if _, err := s.GetBinding(t.Context(), "b"); err != nil {
		t.Errorf("after reopen: %v", err)
	}
}

func TestReopenPreservesEverything(t *testing.T) {
	ctx := t.Context()
	opts := Options{Retention: time.Hour}
	s := openStore(t, opts)
	for _, name := range []string{"beta", "alpha"} {
		if _, err := s.CreateBinding(ctx, api.Binding{Name: name, Image: "img-" + name, Pool: api.PoolSpec{Min: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutPoolSize(ctx, "alpha", api.PoolSpec{Min: 5, Max: 9}); err != nil {
		t.Fatal(err)
	}
	for i, l := range []api.Launch{
		launch("live1", "alpha", api.StateAvailable, 1),
		launch("live2", "beta", api.StateClaimed, 2),
		launch("old", "alpha", api.StateEnded, -3*time.Hour),
		launch("new", "beta", api.StateEnded, 0),
	} {
		if err := s.PutLaunch(ctx, l); err != nil {
			t.Fatalf("PutLaunch %d: %v", i, err)
		}
	}
	type snapshot struct {
		Bindings []api.Binding
		Pool     api.PoolSpec
		Live     []api.Launch
		History  []api.Launch
	}
	take := func(s *Store) snapshot {
		var snap snapshot
		var err error
		if snap.Bindings, err = s.ListBindings(ctx); err != nil {
			t.Fatal(err)
		}
		if snap.Pool, _, err = s.PoolSize(ctx, "alpha"); err != nil {
			t.Fatal(err)
		}
		if snap.Live, err = s.LiveLaunches(ctx); err != nil {
			t.Fatal(err)
		}
		if snap.History, err = s.History(ctx, "", 0); err != nil {
			t.Fatal(err)
		}
		return snap
	}
	before := take(s)
	if len(before.Bindings) != 2 || len(before.Live) != 2 || len(before.History) != 2 {
		t.Fatalf("before reopen: %d bindings, %d live, %d ended; want 2 each", len(before.Bindings), len(before.Live), len(before.History))
	}
	s = reopen(t, s, opts)
	if after := take(s); !reflect.DeepEqual(before, after) {
		t.Errorf("after reopen:\n%+v\nwant\n%+v", after, before)
	}
	// The end time index came back too: pruning finds the old launch.
	if n, err := s.PruneHistory(ctx, t0); err != nil || n != 1 {
		t.Errorf("PruneHistory after reopen = %d, %v; want 1 deleted", n, err)
	}
}

func TestClosedStore(t *testing.T) {
	s := openStore(t, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetBinding(t.Context(), "b"); err == nil {
		t.Error("GetBinding on a closed store succeeded")
	}
	if err := s.PutLaunch(t.Context(), launch("x", "b", api.StateWarming, 0)); err == nil {
		t.Error("PutLaunch on a closed store succeeded")
	}
}

func TestCancelledContext(t *testing.T) {
	s := openStore(t, Options{Retention: time.Hour})
	if err := s.PutLaunch(t.Context(), launch("l1", "b", api.StateClaimed, 0)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := map[string]func() error{
		"CreateBinding":  func() error { _, err := s.CreateBinding(ctx, api.Binding{Name: "b"}); return err },
		"PutBinding":     func() error { _, _, err := s.PutBinding(ctx, api.Binding{Name: "b"}); return err },
		"GetBinding":     func() error { _, err := s.GetBinding(ctx, "b"); return err },
		"ListBindings":   func() error { _, err := s.ListBindings(ctx); return err },
		"DeleteBinding":  func() error { return s.DeleteBinding(ctx, "b") },
		"PutPoolSize":    func() error { return s.PutPoolSize(ctx, "b", api.PoolSpec{}) },
		"PoolSize":       func() error { _, _, err := s.PoolSize(ctx, "b"); return err },
		"DeletePoolSize": func() error { return s.DeletePoolSize(ctx, "b") },
		"PutLaunch":      func() error { return s.PutLaunch(ctx, launch("l2", "b", api.StateWarming, 0)) },
		"UpdateLaunch": func() error {
			_, err := s.UpdateLaunch(ctx, "l1", func(l *api.Launch) error { l.State = api.StateEnded; return nil })
			return err
		},
		"GetLaunch":    func() error { _, err := s.GetLaunch(ctx, "l1"); return err },
		"LiveLaunches": func() error { _, err := s.LiveLaunches(ctx); return err },
		"History":      func() error { _, err := s.History(ctx, "", 0); return err },
		"TouchLaunches": func() error {
			_, err := s.TouchLaunches(ctx, map[string]time.Time{"l1": t0.Add(time.Hour)})
			return err
		},
		"PruneHistory": func() error { _, err := s.PruneHistory(ctx, t0); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, context.Canceled) {
				t.Errorf("got %v, want context.Canceled", err)
			}
		})
	}
	// None of them wrote anything.
	if bs, _ := s.ListBindings(t.Context()); len(bs) != 0 {
		t.Errorf("bindings written with a cancelled context: %+v", bs)
	}
	if l, err := s.GetLaunch(t.Context(), "l1"); err != nil || l.State != api.StateClaimed || !l.LastActivity.IsZero() {
		t.Errorf("launch changed with a cancelled context: %+v, %v", l, err)
	}
	if _, err := s.GetLaunch(t.Context(), "l2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("launch created with a cancelled context: %v", err)
	}
}
