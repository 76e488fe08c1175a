package store

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/nbpool/nbpool/api"
)

// ended returns a launch of binding that ended at t0 plus at.
func ended(id, binding string, at time.Duration) api.Launch {
	l := launch(id, binding, api.StateEnded, at-time.Hour)
	l.Ended = t0.Add(at)
	return l
}

func TestHistory(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, Options{})
	for _, l := range []api.Launch{
		ended("a1", "a", 1*time.Minute),
		ended("b1", "b", 2*time.Minute),
		ended("a2", "a", 3*time.Minute),
		ended("a3", "a", 3*time.Minute), // same Ended as a2: by id, descending
		ended("b2", "b", -time.Minute),
		launch("live", "a", api.StateClaimed, 0),
	} {
		if err := s.PutLaunch(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		binding string
		limit   int
		want    []string
	}{
		{"", 0, []string{"a3", "a2", "b1", "a1", "b2"}},
		{"", 2, []string{"a3", "a2"}},
		{"", 10, []string{"a3", "a2", "b1", "a1", "b2"}},
		{"a", 0, []string{"a3", "a2", "a1"}},
		{"a", 1, []string{"a3"}},
		{"b", 0, []string{"b1", "b2"}},
		{"none", 0, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q/%d", tt.binding, tt.limit), func(t *testing.T) {
			ls, err := s.History(ctx, tt.binding, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, l := range ls {
				ids = append(ids, l.ID)
				if l.State != api.StateEnded {
					t.Errorf("%s in history with state %s", l.ID, l.State)
				}
			}
			if !reflect.DeepEqual(ids, tt.want) {
				t.Errorf("History(%q, %d) = %v, want %v", tt.binding, tt.limit, ids, tt.want)
			}
		})
	}
}

func TestHistoryAfterReEnd(t *testing.T) {
	// Ending an ended launch again with another Ended moves it in the
	// order instead of listing it twice.
	ctx := t.Context()
	s := openStore(t, Options{})
	for _, l := range []api.Launch{ended("x", "a", time.Minute), ended("y", "a", 2*time.Minute), ended("x", "a", 3*time.Minute)} {
		if err := s.PutLaunch(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	ls, err := s.History(ctx, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].ID != "x" || !ls[0].Ended.Equal(t0.Add(3*time.Minute)) || ls[1].ID != "y" {
		t.Errorf("History = %+v, want x (ended at +3m) then y", ls)
	}
}

func TestPruneHistory(t *testing.T) {
	launches := []api.Launch{
		ended("old", "a", -3*time.Hour),
		ended("edge", "a", -time.Hour), // exactly now - retention: kept
		ended("recent", "b", -time.Minute),
		launch("live", "a", api.StateClaimed, -5*time.Hour),
	}
	tests := []struct {
		name      string
		retention time.Duration
		now       time.Time
		want      int
		wantKept  []string // history afterwards, newest first
	}{
		{"forever", 0, t0.Add(1000 * time.Hour), 0, []string{"recent", "edge", "old"}},
		{"one hour", time.Hour, t0, 1, []string{"recent", "edge"}},
		{"a bit later", time.Hour, t0.Add(time.Second), 2, []string{"recent"}},
		{"nothing old enough", 24 * time.Hour, t0, 0, []string{"recent", "edge", "old"}},
		{"everything", time.Nanosecond, t0, 3, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := openStore(t, Options{Retention: tt.retention})
			for _, l := range launches {
				if err := s.PutLaunch(ctx, l); err != nil {
					t.Fatal(err)
				}
			}
			n, err := s.PruneHistory(ctx, tt.now)
			if err != nil || n != tt.want {
				t.Errorf("PruneHistory = %d, %v; want %d", n, err, tt.want)
			}
			ls, err := s.History(ctx, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, l := range ls {
				ids = append(ids, l.ID)
			}
			if !reflect.DeepEqual(ids, tt.wantKept) {
				t.Errorf("history after prune = %v, want %v", ids, tt.wantKept)
			}
			if _, err := s.GetLaunch(ctx, "live"); err != nil {
				t.Errorf("PruneHistory touched a live launch: %v", err)
			}
			if tt.want > 0 {
				if _, err := s.GetLaunch(ctx, "old"); !errors.Is(err, ErrNotFound) {
					t.Errorf("pruned launch still readable: %v", err)
				}
			}
			if n, err := s.PruneHistory(ctx, tt.now); err != nil || n != 0 {
				t.Errorf("second PruneHistory = %d, %v; want 0", n, err)
			}
		})
	}
}
