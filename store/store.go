package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrNotFound is returned, wrapped, when a binding or launch is absent.
var ErrNotFound = errors.New("not found")

// ErrExists is returned, wrapped, by CreateBinding when a binding of that
// name already exists.
var ErrExists = errors.New("already exists")

// ErrEnded is returned, wrapped, by PutLaunch when a launch that is not ended
// is written under the id of a launch that already ended: launches only move
// forward, so a stale copy must not bring an ended launch back to life.
var ErrEnded = errors.New("launch already ended")

// ErrNewerSchema is returned, wrapped, by Open when the file was written by a
// newer nbpool whose schema this one does not know. The file is left as is.
var ErrNewerSchema = errors.New("store was written by a newer nbpool; upgrade nbpool or use another store file")

// ErrLocked is returned, wrapped, by Open when another process holds the
// file's lock for longer than Options.LockTimeout.
var ErrLocked = errors.New("store file is locked: is another nbpool running with the same store?")

// DefaultLockTimeout is how long Open waits for the file lock when
// Options.LockTimeout is zero.
const DefaultLockTimeout = 2 * time.Second

// schemaVersion is the layout this code reads and writes; it is stored in
// the meta bucket under schemaKey as a decimal number.
const schemaVersion = 1

// Bucket names and meta keys.
const (
	bucketMeta     = "meta"
	bucketBindings = "bindings"
	bucketPools    = "pools"
	bucketLive     = "launches"
	bucketHistory  = "history"
	// bucketEndIndex indexes history by end time: key = Ended (8 bytes of
	// big-endian Unix nanoseconds) + id, value = binding name.
	bucketEndIndex = "history-by-end"
	schemaKey      = "schema"
)

// initialMmapSize is mapped at open so that, until the file outgrows it, a
// growing write never waits for readers to finish a remap. On Linux the file
// itself does not grow to this size.
const initialMmapSize = 64 << 20

// errNoChange rolls back a read-write transaction that found nothing to do,
// sparing its two fsyncs. It never leaves the package.
var errNoChange = errors.New("no change")

// Options tunes a Store. The zero value is valid.
type Options struct {
	// Retention is how long ended launches are kept as history, counted
	// from their Ended time; PruneHistory deletes older ones. 0 keeps them
	// forever.
	Retention time.Duration
	// LockTimeout is how long Open waits for the file lock held by another
	// process before it fails with ErrLocked; 0 means DefaultLockTimeout.
	LockTimeout time.Duration
}

// Store keeps bindings, runtime pool sizes and launches in one bbolt file.
// Every write is durable (fsynced) when its method returns. A Store is safe
// for concurrent use by multiple goroutines; only one process may have the
// file open at a time.
type Store struct {
	db   *bolt.DB
	path string
	opts Options
	// batch runs hot-path writes in shared transactions: a groupCommit's
	// do, or another way in benchmarks that compare them.
	batch func(func(*bolt.Tx) error) error
}

// Open opens the store file at path, creating it (mode 0600, since it holds
// launch tokens) and its parent directory (mode 0700) if missing. A new file
// gets the current schema version; an existing one is checked: a newer
// schema fails with ErrNewerSchema, a file held by another process with
// ErrLocked after opts.LockTimeout. Open blocks for up to that timeout
// whatever ctx says, since the file lock cannot be cancelled. The caller
// must Close the Store.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if opts.Retention < 0 {
		return nil, fmt.Errorf("open store %s: retention %s is negative", path, opts.Retention)
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: opts.LockTimeout,
		// The freelist is rebuilt from the data at open instead of being
		// written on every commit: one page less per commit. Data and meta
		// pages are still fsynced, so nothing acknowledged is lost.
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: initialMmapSize,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: waited %s: %w", path, opts.LockTimeout, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := db.Update(initSchema); err != nil {
		return nil, errors.Join(fmt.Errorf("open store %s: %w", path, err), db.Close())
	}
	return &Store{db: db, path: path, opts: opts, batch: (&groupCommit{db: db}).do}, nil
}

// initSchema checks the schema version of an existing file, or writes it and
// the buckets into a new one.
func initSchema(tx *bolt.Tx) error {
	if meta := tx.Bucket([]byte(bucketMeta)); meta != nil {
		raw := meta.Get([]byte(schemaKey))
		v, err := strconv.Atoi(string(raw))
		switch {
		case err != nil:
			return fmt.Errorf("schema version %q is not a number", raw)
		case v > schemaVersion:
			return fmt.Errorf("schema %d, this nbpool knows up to %d: %w", v, schemaVersion, ErrNewerSchema)
		case v < 1:
			return fmt.Errorf("schema version %d is not valid", v)
		}
		// Migrations from older schemas go here, once there is one.
	} else if k, _ := tx.Cursor().First(); k != nil {
		return fmt.Errorf("not an nbpool store: it has a bucket %q but no %q bucket", k, bucketMeta)
	}
	for _, name := range []string{bucketMeta, bucketBindings, bucketPools, bucketLive, bucketHistory, bucketEndIndex} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket([]byte(bucketMeta))
	if meta.Get([]byte(schemaKey)) != nil {
		return nil
	}
	return meta.Put([]byte(schemaKey), []byte(strconv.Itoa(schemaVersion)))
}

// Close closes the file, waiting for running transactions. Methods called
// after Close fail.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// Path returns the store file's path as given to Open.
func (s *Store) Path() string { return s.path }

// view runs fn in a read-only transaction unless ctx is already done.
func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

// update runs fn in a read-write transaction of its own unless ctx is
// already done. If fn returns errNoChange, nothing is written and update
// returns nil.
func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.db.Update(fn); !errors.Is(err, errNoChange) {
		return err
	}
	return nil
}

// batched runs fn in a read-write transaction that may be shared with
// concurrent calls (one fsync for all) unless ctx is already done. fn may
// run more than once, each time in a fresh transaction.
func (s *Store) batched(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.batch(fn)
}

// now is the time the store stamps on records: UTC without a monotonic
// reading, so a stamped value equals what a later read decodes.
func now() time.Time { return time.Now().UTC() }

// getJSON decodes the value of key in b into v; found is false when the key
// is absent.
func getJSON(b *bolt.Bucket, key string, v any) (found bool, err error) {
	raw := b.Get([]byte(key))
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("decode %q: %w", key, err)
	}
	return true, nil
}

// listJSON decodes every value in b, in key order.
func listJSON[T any](b *bolt.Bucket) ([]T, error) {
	var out []T
	err := b.ForEach(func(k, v []byte) error {
		var x T
		if err := json.Unmarshal(v, &x); err != nil {
			return fmt.Errorf("decode %q: %w", k, err)
		}
		out = append(out, x)
		return nil
	})
	return out, err
}

// putJSON encodes v as the value of key in b.
func putJSON(b *bolt.Bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	return b.Put([]byte(key), raw)
}
