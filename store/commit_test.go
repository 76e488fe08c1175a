package store

import (
	"fmt"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/nbpool/nbpool/api"
)

// txid returns the id of the last committed write transaction.
func txid(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestGroupCommitCoalesces checks that concurrent writes share commits (and
// fsyncs) and that each is still applied exactly once.
func TestGroupCommitCoalesces(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, Options{})
	const n = 200
	before := txid(t, s)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := s.PutLaunch(ctx, launch(fmt.Sprintf("l%03d", i), "b", api.StateWarming, 0)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	commits := txid(t, s) - before
	if commits >= n || commits < 1 {
		t.Errorf("%d writes made %d commits, want fewer commits than writes", n, commits)
	}
	if live, _ := s.LiveLaunches(ctx); len(live) != n {
		t.Errorf("%d live launches after %d puts, want %d", len(live), n, n)
	}
	t.Logf("%d writes, %d commits", n, commits)
}

// TestGroupCommitPanic checks that an fn that panics panics in its own
// caller and leaves the writes that shared its transaction intact.
func TestGroupCommitPanic(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, Options{})
	const n = 30
	for i := range n {
		if err := s.PutLaunch(ctx, launch(fmt.Sprintf("l%02d", i), "b", api.StateAvailable, 0)); err != nil {
			t.Fatal(err)
		}
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		panicked []int
	)
	for i := range n {
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					mu.Lock()
					panicked = append(panicked, i)
					mu.Unlock()
				}
			}()
			_, err := s.UpdateLaunch(ctx, fmt.Sprintf("l%02d", i), func(l *api.Launch) error {
				if i%10 == 0 {
					panic("boom")
				}
				l.State = api.StateClaimed
				return nil
			})
			if err != nil {
				t.Errorf("launch %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if len(panicked) != n/10 {
		t.Errorf("%d callers panicked, want %d", len(panicked), n/10)
	}
	live, err := s.LiveLaunches(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != n {
		t.Errorf("%d live launches, want %d", len(live), n)
	}
	for _, l := range live {
		var i int
		fmt.Sscanf(l.ID, "l%d", &i)
		if want := map[bool]api.State{true: api.StateAvailable, false: api.StateClaimed}[i%10 == 0]; l.State != want {
			t.Errorf("launch %s is %s, want %s", l.ID, l.State, want)
		}
	}
}
