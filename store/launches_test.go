package store

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nbpool/nbpool/api"
)

// where reports which buckets hold launch id, read in one transaction.
func where(t *testing.T, s *Store, id string) (live, ended bool) {
	t.Helper()
	if err := s.db.View(func(tx *bolt.Tx) error {
		live = tx.Bucket([]byte(bucketLive)).Get([]byte(id)) != nil
		ended = tx.Bucket([]byte(bucketHistory)).Get([]byte(id)) != nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return live, ended
}

func TestPutLaunch(t *testing.T) {
	claimed := launch("l1", "b", api.StateClaimed, 0)
	claimed.Claimed = t0.Add(time.Second)
	ended := launch("l1", "b", api.StateEnded, 0)
	noEnd := ended
	noEnd.Ended = time.Time{}
	tests := []struct {
		name      string
		puts      []api.Launch // written in order; all but the last must succeed
		wantErr   error        // of the last put
		wantLive  bool
		wantEnded bool
		want      api.Launch // GetLaunch afterwards; Ended checked separately when zero
	}{
		{name: "new", puts: []api.Launch{launch("l1", "b", api.StateWarming, 0)}, wantLive: true, want: launch("l1", "b", api.StateWarming, 0)},
		{name: "replace", puts: []api.Launch{launch("l1", "b", api.StateWarming, 0), claimed}, wantLive: true, want: claimed},
		{name: "end moves to history", puts: []api.Launch{claimed, ended}, wantEnded: true, want: ended},
		{name: "ended at once", puts: []api.Launch{ended}, wantEnded: true, want: ended},
		{name: "ended twice replaces history", puts: []api.Launch{ended, noEnd}, wantEnded: true, want: noEnd},
		{name: "ended without Ended gets now", puts: []api.Launch{claimed, noEnd}, wantEnded: true, want: noEnd},
		{name: "stale live copy of an ended launch", puts: []api.Launch{ended, claimed}, wantErr: ErrEnded, wantEnded: true, want: ended},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := openStore(t, Options{})
			start := time.Now()
			var err error
			for _, l := range tt.puts {
				if err != nil {
					t.Fatalf("an earlier PutLaunch failed: %v", err)
				}
				err = s.PutLaunch(ctx, l)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("PutLaunch: %v, want %v", err, tt.wantErr)
			}
			if live, ended := where(t, s, "l1"); live != tt.wantLive || ended != tt.wantEnded {
				t.Errorf("live %v, ended %v; want live %v, ended %v", live, ended, tt.wantLive, tt.wantEnded)
			}
			got, err := s.GetLaunch(ctx, "l1")
			if err != nil {
				t.Fatalf("GetLaunch: %v", err)
			}
			want := tt.want
			if want.State == api.StateEnded && want.Ended.IsZero() {
				if got.Ended.Before(start.Add(-time.Second)) {
					t.Errorf("Ended = %v, want now", got.Ended)
				}
				want.Ended = got.Ended
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("GetLaunch =\n%+v\nwant\n%+v", got, want)
			}
			if h, _ := s.History(ctx, "", 0); len(h) != btoi(tt.wantEnded) {
				t.Errorf("History has %d launches, want %d", len(h), btoi(tt.wantEnded))
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestPutLaunchEmptyID(t *testing.T) {
	s := openStore(t, Options{})
	if err := s.PutLaunch(t.Context(), api.Launch{State: api.StateWarming}); err == nil {
		t.Error("PutLaunch without an id succeeded")
	}
}

func TestGetLaunch(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, Options{})
	live, ended := launch("live", "b", api.StateAvailable, 0), launch("ended", "b", api.StateEnded, 0)
	for _, l := range []api.Launch{live, ended} {
		if err := s.PutLaunch(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		id      string
		want    api.Launch
		wantErr error
	}{
		{"live", live, nil},
		{"ended", ended, nil},
		{"absent", api.Launch{}, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got, err := s.GetLaunch(ctx, tt.id)
			if !errors.Is(err, tt.wantErr) || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("GetLaunch = %+v, %v; want %+v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestLiveLaunches(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, Options{})
	if ls, err := s.LiveLaunches(ctx); err != nil || len(ls) != 0 {
		t.Fatalf("empty store: %v, %v", ls, err)
	}
	for _, l := range []api.Launch{
		launch("c", "b", api.StateClaimed, 3),
		launch("a", "b", api.StateWarming, 3), // same Created as c: by id
		launch("z", "x", api.StateAvailable, 1),
		launch("gone", "b", api.StateEnded, 2),
	} {
		if err := s.PutLaunch(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	ls, err := s.LiveLaunches(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range ls {
		ids = append(ids, l.ID)
	}
	if want := []string{"z", "a", "c"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("LiveLaunches ids = %v, want %v (by Created, then id; no ended ones)", ids, want)
	}
}

func TestUpdateLaunch(t *testing.T) {
	errBusy := errors.New("not available")
	claim := func(l *api.Launch) error {
		if l.State != api.StateAvailable {
			return errBusy
		}
		l.State, l.Claimed = api.StateClaimed, t0.Add(time.Minute)
		return nil
	}
	end := func(l *api.Launch) error {
		l.State, l.EndReason = api.StateEnded, api.EndCulledIdle
		return nil
	}
	tests := []struct {
		name      string
		id        string
		fn        func(*api.Launch) error
		wantErr   error
		wantState api.State // of launch "a" afterwards
		wantLive  bool
	}{
		{name: "claim", id: "a", fn: claim, wantState: api.StateClaimed, wantLive: true},
		{name: "fn error writes nothing", id: "a", fn: func(l *api.Launch) error {
			l.State, l.Token = api.StateClaimed, "changed"
			return errBusy
		}, wantErr: errBusy, wantState: api.StateAvailable, wantLive: true},
		{name: "end moves to history", id: "a", fn: end, wantState: api.StateEnded},
		{name: "changing the id is refused", id: "a", fn: func(l *api.Launch) error {
			l.ID, l.State = "b", api.StateClaimed
			return nil
		}, wantState: api.StateAvailable, wantLive: true},
		{name: "absent", id: "absent", fn: claim, wantErr: ErrNotFound, wantState: api.StateAvailable, wantLive: true},
		{name: "already ended", id: "ended", fn: claim, wantErr: ErrNotFound, wantState: api.StateAvailable, wantLive: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := openStore(t, Options{})
			for _, l := range []api.Launch{launch("a", "b", api.StateAvailable, 0), launch("ended", "b", api.StateEnded, 0)} {
				if err := s.PutLaunch(ctx, l); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			got, err := s.UpdateLaunch(ctx, tt.id, tt.fn)
			switch {
			case tt.name == "changing the id is refused":
				if err == nil {
					t.Fatal("UpdateLaunch that changed the id succeeded")
				}
			case !errors.Is(err, tt.wantErr):
				t.Fatalf("UpdateLaunch: %v, want %v", err, tt.wantErr)
			case tt.wantErr == errBusy && err != errBusy:
				t.Errorf("fn's error came back as %v, want it as is", err)
			}
			stored, gerr := s.GetLaunch(ctx, "a")
			if gerr != nil {
				t.Fatalf("GetLaunch: %v", gerr)
			}
			if stored.State != tt.wantState || stored.Token != "tok-a" {
				t.Errorf("stored state %s, token %q; want %s, tok-a", stored.State, stored.Token, tt.wantState)
			}
			if live, ended := where(t, s, "a"); live != tt.wantLive || ended == tt.wantLive {
				t.Errorf("live %v, ended %v; want live %v", live, ended, tt.wantLive)
			}
			if _, err := s.GetLaunch(ctx, "b"); !errors.Is(err, ErrNotFound) {
				t.Errorf("a launch appeared under another id: %v", err)
			}
			if err != nil {
				return
			}
			if !reflect.DeepEqual(got, stored) {
				t.Errorf("UpdateLaunch returned\n%+v\nbut stored\n%+v", got, stored)
			}
			if stored.State == api.StateEnded && stored.Ended.Before(start.Add(-time.Second)) {
				t.Errorf("Ended = %v, want now", stored.Ended)
			}
		})
	}
}

// TestEndIsAtomic ends launches while readers look at both buckets in one
// transaction each: a reader must find every launch in exactly one place.
func TestEndIsAtomic(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, Options{})
	const n = 200
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("l%03d", i)
		if err := s.PutLaunch(ctx, launch(ids[i], "b", api.StateClaimed, time.Duration(i))); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				err := s.db.View(func(tx *bolt.Tx) error {
					live, hist := tx.Bucket([]byte(bucketLive)), tx.Bucket([]byte(bucketHistory))
					for _, id := range ids {
						inLive, inHist := live.Get([]byte(id)) != nil, hist.Get([]byte(id)) != nil
						if inLive == inHist {
							return fmt.Errorf("launch %s: live %v, ended %v", id, inLive, inHist)
						}
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var writers sync.WaitGroup
	for i, id := range ids {
		writers.Go(func() {
			var err error
			if i%2 == 0 {
				_, err = s.UpdateLaunch(ctx, id, func(l *api.Launch) error { l.State = api.StateEnded; return nil })
			} else {
				err = s.PutLaunch(ctx, launch(id, "b", api.StateEnded, time.Duration(i)))
			}
			if err != nil {
				t.Errorf("end %s: %v", id, err)
			}
		})
	}
	writers.Wait()
	close(done)
	readers.Wait()
	if live, _ := s.LiveLaunches(ctx); len(live) != 0 {
		t.Errorf("%d launches still live after all ended", len(live))
	}
	if h, _ := s.History(ctx, "", 0); len(h) != n {
		t.Errorf("history has %d launches, want %d", len(h), n)
	}
}

// TestUpdateLaunchConcurrent runs 50 goroutines at once, on different
// launches and on the same one, some of them failing: no update may be lost
// or applied twice, and failed ones must leave no trace.
func TestUpdateLaunchConcurrent(t *testing.T) {
	const (
		workers = 50
		rounds  = 10
	)
	count := func(l *api.Launch) error { // Phase counts the updates
		n, _ := strconv.Atoi(l.Phase)
		l.Phase = strconv.Itoa(n + 1)
		return nil
	}
	errNo := errors.New("refused")
	tests := []struct {
		name   string
		id     func(worker int) string
		fn     func(worker int) func(*api.Launch) error
		want   map[string]int // id -> updates applied
		failed int            // calls that must fail with errNo
	}{
		{
			name: "different launches",
			id:   func(w int) string { return fmt.Sprintf("l%02d", w) },
			fn:   func(int) func(*api.Launch) error { return count },
			want: func() map[string]int {
				m := map[string]int{}
				for w := range workers {
					m[fmt.Sprintf("l%02d", w)] = rounds
				}
				return m
			}(),
		},
		{
			name: "same launch",
			id:   func(int) string { return "same" },
			fn:   func(int) func(*api.Launch) error { return count },
			want: map[string]int{"same": workers * rounds},
		},
		{
			name: "same launch, every third worker refused",
			id:   func(int) string { return "same" },
			fn: func(w int) func(*api.Launch) error {
				if w%3 == 0 {
					return func(l *api.Launch) error { l.Phase = "garbage"; return errNo }
				}
				return count
			},
			want:   map[string]int{"same": (workers - (workers+2)/3) * rounds},
			failed: (workers + 2) / 3 * rounds,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := openStore(t, Options{})
			for id := range tt.want {
				if err := s.PutLaunch(ctx, launch(id, "b", api.StateClaimed, 0)); err != nil {
					t.Fatal(err)
				}
			}
			var (
				wg     sync.WaitGroup
				mu     sync.Mutex
				failed int
			)
			for w := range workers {
				wg.Go(func() {
					for range rounds {
						_, err := s.UpdateLaunch(ctx, tt.id(w), tt.fn(w))
						if errors.Is(err, errNo) {
							mu.Lock()
							failed++
							mu.Unlock()
						} else if err != nil {
							t.Errorf("worker %d: %v", w, err)
						}
					}
				})
			}
			wg.Wait()
			if failed != tt.failed {
				t.Errorf("%d calls refused, want %d", failed, tt.failed)
			}
			live, err := s.LiveLaunches(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(live) != len(tt.want) {
				t.Errorf("%d live launches, want %d", len(live), len(tt.want))
			}
			for _, l := range live {
				if n, _ := strconv.Atoi(l.Phase); n != tt.want[l.ID] {
					t.Errorf("launch %s got %q updates, want %d", l.ID, l.Phase, tt.want[l.ID])
				}
			}
		})
	}
}

func TestTouchLaunches(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, Options{})
	a := launch("a", "b", api.StateClaimed, 0)
	a.LastActivity = t0.Add(10 * time.Minute)
	for _, l := range []api.Launch{a, launch("fresh", "b", api.StateClaimed, 0), launch("ended", "b", api.StateEnded, 0)} {
		if err := s.PutLaunch(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name     string
		activity map[string]time.Time
		want     int
		wantA    time.Time // a's LastActivity afterwards
	}{
		{"nothing", nil, 0, a.LastActivity},
		{"older is ignored", map[string]time.Time{"a": t0}, 0, a.LastActivity},
		{"equal is ignored", map[string]time.Time{"a": a.LastActivity}, 0, a.LastActivity},
		{"newer moves forward", map[string]time.Time{"a": t0.Add(20 * time.Minute)}, 1, t0.Add(20 * time.Minute)},
		{"unknown and ended ids are ignored", map[string]time.Time{
			"a": t0.Add(30 * time.Minute), "fresh": t0.Add(time.Minute),
			"unknown": t0.Add(time.Hour), "ended": t0.Add(time.Hour),
		}, 2, t0.Add(30 * time.Minute)},
		{"back in time again", map[string]time.Time{"a": t0.Add(25 * time.Minute)}, 0, t0.Add(30 * time.Minute)},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			n, err := s.TouchLaunches(ctx, st.activity)
			if err != nil || n != st.want {
				t.Errorf("TouchLaunches = %d, %v; want %d", n, err, st.want)
			}
			if got, _ := s.GetLaunch(ctx, "a"); !got.LastActivity.Equal(st.wantA) || got.State != api.StateClaimed {
				t.Errorf("a: LastActivity %v, state %s; want %v, claimed", got.LastActivity, got.State, st.wantA)
			}
		})
	}
	if l, _ := s.GetLaunch(ctx, "ended"); !l.LastActivity.IsZero() {
		t.Errorf("an ended launch was touched: %v", l.LastActivity)
	}
	if _, err := s.GetLaunch(ctx, "unknown"); !errors.Is(err, ErrNotFound) {
		t.Errorf("touching an unknown id created it: %v", err)
	}
}
