package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nbpool/nbpool/api"
)

// PutLaunch creates or replaces launch l. A launch whose State is ended is
// written to history and removed from the live launches in one transaction;
// its Ended is set to now if it is zero. Writing a launch that is not ended
// under the id of an ended one fails with ErrEnded. Concurrent calls may
// share one transaction and one fsync; each is durable when it returns.
func (s *Store) PutLaunch(ctx context.Context, l api.Launch) error {
	if l.ID == "" {
		return errors.New("put launch: id is empty")
	}
	err := s.batched(ctx, func(tx *bolt.Tx) error {
		if l.State == api.StateEnded {
			return endLaunch(tx, &l)
		}
		if tx.Bucket([]byte(bucketHistory)).Get([]byte(l.ID)) != nil {
			return ErrEnded
		}
		return putJSON(tx.Bucket([]byte(bucketLive)), l.ID, l)
	})
	if err != nil {
		return fmt.Errorf("put launch %q: %w", l.ID, err)
	}
	return nil
}

// UpdateLaunch reads the live launch id, lets fn change it and writes it
// back, all in one transaction, and returns the launch as written. It fails
// with ErrNotFound if the launch is not live (never was, or already ended).
// If fn returns an error, nothing is written and that error is returned as
// is. If fn sets State to ended, the launch moves to history in the same
// transaction (with Ended set to now if fn left it zero). fn must not change
// the ID.
//
// Concurrent calls may share one transaction and one fsync, and for that fn
// may run more than once, each time on a fresh copy of the stored launch
// (when another call in its transaction fails, or its own fn fails and is
// run again alone): fn must only change the launch it is given and have no
// other effects (no counters, channels or logs). fn runs while the store's
// write lock is held, so it must be quick and must not call the Store.
func (s *Store) UpdateLaunch(ctx context.Context, id string, fn func(*api.Launch) error) (api.Launch, error) {
	var (
		out   api.Launch
		fnErr error
	)
	err := s.batched(ctx, func(tx *bolt.Tx) error {
		fnErr = nil
		var l api.Launch
		live := tx.Bucket([]byte(bucketLive))
		found, err := getJSON(live, id, &l)
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		if err := fn(&l); err != nil {
			fnErr = err
			return err
		}
		if l.ID != id {
			return fmt.Errorf("the update changed the id to %q", l.ID)
		}
		if l.State == api.StateEnded {
			err = endLaunch(tx, &l)
		} else {
			err = putJSON(live, id, l)
		}
		out = l
		return err
	})
	if fnErr != nil {
		// Only the last run counts, and fnErr is reset at the start of
		// each: the transaction was rolled back with fn's own error.
		return api.Launch{}, fnErr
	}
	if err != nil {
		return api.Launch{}, fmt.Errorf("update launch %q: %w", id, err)
	}
	return out, nil
}

// GetLaunch returns launch id, live or from history, or ErrNotFound.
func (s *Store) GetLaunch(ctx context.Context, id string) (api.Launch, error) {
	var l api.Launch
	err := s.view(ctx, func(tx *bolt.Tx) error {
		for _, name := range []string{bucketLive, bucketHistory} {
			found, err := getJSON(tx.Bucket([]byte(name)), id, &l)
			if err != nil || found {
				return err
			}
		}
		return ErrNotFound
	})
	if err != nil {
		return api.Launch{}, fmt.Errorf("get launch %q: %w", id, err)
	}
	return l, nil
}

// LiveLaunches returns all launches that have not ended, oldest Created
// first (ties by id).
func (s *Store) LiveLaunches(ctx context.Context) ([]api.Launch, error) {
	var ls []api.Launch
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		ls, err = listJSON[api.Launch](tx.Bucket([]byte(bucketLive)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list live launches: %w", err)
	}
	slices.SortFunc(ls, func(a, b api.Launch) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	return ls, nil
}

// TouchLaunches sets the LastActivity of each live launch named in activity
// to the time given for it, when that time is later than the one stored, in
// one transaction; LastActivity never moves back. Ids that are not live are
// ignored. It returns how many launches changed; when none did, nothing is
// written.
func (s *Store) TouchLaunches(ctx context.Context, activity map[string]time.Time) (int, error) {
	if len(activity) == 0 {
		return 0, ctx.Err()
	}
	var n int
	err := s.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		live := tx.Bucket([]byte(bucketLive))
		for id, t := range activity {
			var l api.Launch
			found, err := getJSON(live, id, &l)
			if err != nil {
				return err
			}
			if !found || !t.After(l.LastActivity) {
				continue
			}
			l.LastActivity = t
			if err := putJSON(live, id, l); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return errNoChange
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("touch launches: %w", err)
	}
	return n, nil
}

// endLaunch writes ended launch l to history, indexed by its end time, and
// removes it from the live launches; a zero Ended is set to now first. A
// history record of the same id is replaced.
func endLaunch(tx *bolt.Tx, l *api.Launch) error {
	if l.Ended.IsZero() {
		l.Ended = now()
	}
	hist := tx.Bucket([]byte(bucketHistory))
	index := tx.Bucket([]byte(bucketEndIndex))
	var old api.Launch
	found, err := getJSON(hist, l.ID, &old)
	if err != nil {
		return err
	}
	if found {
		if err := index.Delete(endKey(old)); err != nil {
			return err
		}
	}
	if err := putJSON(hist, l.ID, l); err != nil {
		return err
	}
	if err := index.Put(endKey(*l), []byte(l.Binding)); err != nil {
		return err
	}
	return tx.Bucket([]byte(bucketLive)).Delete([]byte(l.ID))
}
