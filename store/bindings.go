package store

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/nbpool/nbpool/api"
)

// CreateBinding stores a new binding under b.Name, with Created and Updated
// set to now, and returns it as stored. It fails with ErrExists if the name
// is taken. The binding is stored as given: validating it is the caller's
// job.
func (s *Store) CreateBinding(ctx context.Context, b api.Binding) (api.Binding, error) {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if b.Name == "" {
			return errors.New("name is empty")
		}
		bucket := tx.Bucket([]byte(bucketBindings))
		if bucket.Get([]byte(b.Name)) != nil {
			return ErrExists
		}
		b.Created = now()
		b.Updated = b.Created
		return putJSON(bucket, b.Name, b)
	})
	if err != nil {
		return api.Binding{}, fmt.Errorf("create binding %q: %w", b.Name, err)
	}
	return b, nil
}

// PutBinding creates or replaces the binding named b.Name and returns it as
// stored: Updated is set to now, Created is kept from the binding it
// replaces (or set to now). created reports whether the binding is new.
func (s *Store) PutBinding(ctx context.Context, b api.Binding) (stored api.Binding, created bool, err error) {
	err = s.update(ctx, func(tx *bolt.Tx) error {
		if b.Name == "" {
			return errors.New("name is empty")
		}
		bucket := tx.Bucket([]byte(bucketBindings))
		var old api.Binding
		found, err := getJSON(bucket, b.Name, &old)
		if err != nil {
			return err
		}
		created = !found
		b.Updated = now()
		b.Created = old.Created
		if created {
			b.Created = b.Updated
		}
		return putJSON(bucket, b.Name, b)
	})
	if err != nil {
		return api.Binding{}, false, fmt.Errorf("put binding %q: %w", b.Name, err)
	}
	return b, created, nil
}

// GetBinding returns the binding called name, or ErrNotFound.
func (s *Store) GetBinding(ctx context.Context, name string) (api.Binding, error) {
	var b api.Binding
	err := s.view(ctx, func(tx *bolt.Tx) error {
		found, err := getJSON(tx.Bucket([]byte(bucketBindings)), name, &b)
		if err == nil && !found {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return api.Binding{}, fmt.Errorf("get binding %q: %w", name, err)
	}
	return b, nil
}

// ListBindings returns all bindings sorted by name.
func (s *Store) ListBindings(ctx context.Context) ([]api.Binding, error) {
	var bs []api.Binding
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		// Keys are in byte order, which is name order.
		bs, err = listJSON[api.Binding](tx.Bucket([]byte(bucketBindings)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list bindings: %w", err)
	}
	return bs, nil
}

// DeleteBinding deletes the binding called name and its runtime pool size,
// or fails with ErrNotFound. Its launches are left alone.
func (s *Store) DeleteBinding(ctx context.Context, name string) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		bucket := tx.Bucket([]byte(bucketBindings))
		if bucket.Get([]byte(name)) == nil {
			return ErrNotFound
		}
		if err := bucket.Delete([]byte(name)); err != nil {
			return err
		}
		return tx.Bucket([]byte(bucketPools)).Delete([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("delete binding %q: %w", name, err)
	}
	return nil
}

// PutPoolSize records a pool size for binding, set at runtime, that
// overrides the binding's own pool spec and survives restarts. It fails with
// ErrNotFound if there is no such binding, so a size cannot outlive a
// binding deleted at the same moment. The size is not validated.
func (s *Store) PutPoolSize(ctx context.Context, binding string, p api.PoolSpec) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket([]byte(bucketBindings)).Get([]byte(binding)) == nil {
			return fmt.Errorf("binding: %w", ErrNotFound)
		}
		return putJSON(tx.Bucket([]byte(bucketPools)), binding, p)
	})
	if err != nil {
		return fmt.Errorf("put pool size of %q: %w", binding, err)
	}
	return nil
}

// PoolSize returns the runtime pool size of binding; ok is false when none
// was set, and the binding's own spec applies.
func (s *Store) PoolSize(ctx context.Context, binding string) (p api.PoolSpec, ok bool, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		ok, err = getJSON(tx.Bucket([]byte(bucketPools)), binding, &p)
		return err
	})
	if err != nil {
		return api.PoolSpec{}, false, fmt.Errorf("get pool size of %q: %w", binding, err)
	}
	return p, ok, nil
}

// DeletePoolSize forgets the runtime pool size of binding, so its own spec
// applies again. It is not an error if none was set.
func (s *Store) DeletePoolSize(ctx context.Context, binding string) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		bucket := tx.Bucket([]byte(bucketPools))
		if bucket.Get([]byte(binding)) == nil {
			return errNoChange
		}
		return bucket.Delete([]byte(binding))
	})
	if err != nil {
		return fmt.Errorf("delete pool size of %q: %w", binding, err)
	}
	return nil
}
