package store

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// groupCommit runs concurrent writes in shared transactions, like bbolt's
// DB.Batch, but without its timer: a write that finds no commit running
// commits at once, alone, and the writes that arrive while a commit runs
// are committed together right after it. So a lone write costs what
// DB.Update costs, and under load one commit (and fsync pair) serves many
// writes. bbolt's Batch instead makes every write wait MaxBatchDelay for
// company, which the Go timer rounds up to about a millisecond when the
// process is idle; see BenchmarkUpdateLaunchParallel.
//
// As with DB.Batch, a write's fn may run more than once: if one fn fails,
// the shared transaction is rolled back, the others run again without it,
// and the failed one runs again alone (unless it was alone already), so its
// error reflects committed data only.
type groupCommit struct {
	db *bolt.DB

	mu sync.Mutex
	// leading is true while some writer commits; it hands the lead to the
	// first of pending when it is done, or clears leading.
	leading bool
	pending []*write
}

// write is one caller's fn and where its outcome goes.
type write struct {
	fn func(*bolt.Tx) error
	// done gets the outcome: nil or an error for the caller, errLead when
	// the caller is to commit the pending writes itself, errSolo when its
	// fn failed in a shared transaction and must run again alone.
	done chan error
}

var (
	errLead = errors.New("lead the next commit")
	errSolo = errors.New("run alone")
)

// do runs fn in a read-write transaction, perhaps shared, and returns when it
// is committed (or failed). It is safe for concurrent use.
func (g *groupCommit) do(fn func(*bolt.Tx) error) error {
	w := &write{fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, w)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()

	if !lead {
		if err := <-w.done; err != errLead {
			return g.outcome(w, err)
		}
	}
	// Let writers that were just woken by the previous commit queue up
	// first: without this, on few CPUs, batches alternate between one write
	// and all the others, and twice as many commits are made.
	runtime.Gosched()
	g.mu.Lock()
	batch := g.pending
	g.pending = nil
	g.mu.Unlock()

	g.commit(batch)

	g.mu.Lock()
	if len(g.pending) > 0 {
		g.pending[0].done <- errLead
	} else {
		g.leading = false
	}
	g.mu.Unlock()
	return g.outcome(w, <-w.done)
}

// outcome turns what a write received into what its caller gets.
func (g *groupCommit) outcome(w *write, err error) error {
	if err == errSolo {
		return g.db.Update(w.fn)
	}
	return err
}

// commit runs the batch's fns in one transaction and tells each its outcome.
// A failing fn is taken out (to run alone) and the rest run again.
func (g *groupCommit) commit(batch []*write) {
	for len(batch) > 0 {
		failed := -1
		err := g.db.Update(func(tx *bolt.Tx) error {
			for i, w := range batch {
				if err := call(w.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			var p panicError
			if len(batch) == 1 && !errors.As(err, &p) {
				// It ran alone already: its error stands.
				batch[0].done <- err
				return
			}
			batch[failed].done <- errSolo
			batch = append(batch[:failed], batch[failed+1:]...)
			continue
		}
		// Success, or bbolt's own error: the same for all.
		for _, w := range batch {
			w.done <- err
		}
		return
	}
}

// call runs fn, turning a panic into a panicError so that one write's panic
// does not strand the others; the write then runs again alone, and panics in
// its own caller.
func call(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicError{p}
		}
	}()
	return fn(tx)
}

// panicError is a panic caught in a shared transaction.
type panicError struct{ value any }

func (p panicError) Error() string { return fmt.Sprintf("panic in a store transaction: %v", p.value) }
