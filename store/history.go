package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nbpool/nbpool/api"
)

// History returns the ended launches of binding ("" for all bindings),
// latest Ended first, at most limit of them (0 for all). It reads the end
// time index, so it costs the launches returned plus the index entries of
// other bindings it passes over, not the whole history.
func (s *Store) History(ctx context.Context, binding string, limit int) ([]api.Launch, error) {
	var ls []api.Launch
	err := s.view(ctx, func(tx *bolt.Tx) error {
		hist := tx.Bucket([]byte(bucketHistory))
		c := tx.Bucket([]byte(bucketEndIndex)).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if binding != "" && string(v) != binding {
				continue
			}
			id := string(k[8:])
			var l api.Launch
			found, err := getJSON(hist, id, &l)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("index entry for %q without a history record", id)
			}
			ls = append(ls, l)
			if limit > 0 && len(ls) == limit {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history of %q: %w", binding, err)
	}
	return ls, nil
}

// PruneHistory deletes the ended launches whose Ended is before
// now - Options.Retention and returns how many it deleted. With Retention 0
// it keeps everything and returns 0. When there is nothing to delete,
// nothing is written.
func (s *Store) PruneHistory(ctx context.Context, now time.Time) (int, error) {
	if s.opts.Retention == 0 {
		return 0, ctx.Err()
	}
	cutoff := endPrefix(now.Add(-s.opts.Retention))
	var n int
	err := s.update(ctx, func(tx *bolt.Tx) error {
		hist := tx.Bucket([]byte(bucketHistory))
		index := tx.Bucket([]byte(bucketEndIndex))
		// Collect first: deleting under a bbolt cursor can skip keys.
		var old [][]byte
		c := index.Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], cutoff) < 0; k, _ = c.Next() {
			old = append(old, bytes.Clone(k))
		}
		n = len(old)
		if n == 0 {
			return errNoChange
		}
		for _, k := range old {
			if err := hist.Delete(k[8:]); err != nil {
				return err
			}
			if err := index.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune history: %w", err)
	}
	return n, nil
}

// endKey is l's key in the end time index: its end time, then its id, so
// the index is in end order.
func endKey(l api.Launch) []byte {
	return append(endPrefix(l.Ended), l.ID...)
}

// endPrefix encodes t as 8 bytes that sort in time order. Times before 1970
// (or a zero time) encode as 0; nanoseconds run out in 2262.
func endPrefix(t time.Time) []byte {
	ns := max(t.UnixNano(), 0)
	if t.Year() < 1970 {
		ns = 0
	}
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8+24), uint64(ns))
}
