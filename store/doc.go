// Package store keeps nbpool's state in one bbolt file so that a restart
// loses nothing: bindings, pool sizes set at runtime, live launches and the
// history of ended ones. It is the only package that imports bbolt.
//
// A Store comes from Open and is safe for concurrent use. Records are JSON
// encodings of the api types, one bbolt bucket per kind:
//
//	meta            "schema" = the layout version (1), checked by Open
//	bindings        name -> api.Binding
//	pools           binding name -> api.PoolSpec (runtime override)
//	launches        id -> api.Launch, live (warming, available, claimed)
//	history         id -> api.Launch, ended
//	history-by-end  Ended (8 bytes, big-endian Unix ns) + id -> binding name
//
// A launch is in exactly one of launches and history: ending it (PutLaunch or
// UpdateLaunch with State ended) moves it in the same transaction, and
// PutLaunch refuses to bring an ended id back (ErrEnded). Every method
// returns only after its write is fsynced. Errors wrap the package's
// sentinels (ErrNotFound, ErrExists, ErrEnded, ErrNewerSchema, ErrLocked)
// with what was being done; test them with errors.Is.
//
// # Caveats
//
//   - bbolt cannot cancel a transaction: a method checks its context only
//     before it starts, and Open waits for the file lock for up to
//     Options.LockTimeout whatever its context says.
//   - One process at a time: the file is locked while open, and a second Open
//     (in another process or the same one) fails with ErrLocked.
//   - Writes are serialized. PutLaunch and UpdateLaunch go through a group
//     commit: a call that finds no commit running commits at once, and the
//     calls that arrive meanwhile share the next transaction and fsync
//     pair. This is bbolt's DB.Batch without its timer, which costs a lone
//     call a millisecond or more (see BenchmarkUpdateLaunchParallel). As
//     with DB.Batch, UpdateLaunch's fn may run more than once: it must only
//     change the launch it is given. An fn that returns an error makes the
//     rest of its batch run again, so fn errors are for rare cases (a launch
//     in the wrong state), not for control flow on every call.
//   - fn runs with the write lock held: it must not call the Store (that
//     deadlocks) and must not do I/O.
//   - TouchLaunches rewrites each touched launch, in one transaction that
//     holds the write lock for the whole map; flush activity every few
//     seconds, not per request.
//   - The freelist is not written to the file (bbolt's NoFreelistSync), so
//     Open scans the file to rebuild it: fast for the megabytes nbpool
//     keeps, and it makes every commit one page smaller.
//   - Launch tokens are stored in clear; the file is created with mode 0600
//     and its directory, if Open creates it, with 0700.
//   - The file never shrinks: pages freed by deleted records are reused, not
//     returned to the file system. Run `bbolt compact` on a stopped daemon's
//     file to shrink it.
//   - History keeps ended launches forever unless Options.Retention is set
//     and PruneHistory is called, e.g. hourly.
//   - Times are stored as RFC 3339 with nanoseconds; the store stamps UTC
//     times. Compare times with time.Time.Equal, not ==.
package store
