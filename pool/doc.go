// Package pool keeps, per binding, a set of ready notebook containers and
// hands them out.
//
// A Manager owns every live launch of the daemon. Each binding has a pool:
// available launches wait in a FIFO queue; warming ones are being created and
// probed. A claim pops the oldest available launch (O(1)), persists the claim
// in one store transaction and registers the proxy route. When the queue is
// empty a claim reserves a warming launch or starts a new one (a cold start,
// answered with 202 and followed with Watch), as long as the binding's max and
// the daemon's capacity allow; otherwise it fails with ErrFull.
//
// Counting is by launch: warming, available and claimed launches all count
// against the binding's max and the capacity, so the number of containers
// never exceeds the capacity, whatever the burst.
//
// # Concurrency
//
// One mutex guards the pools and launches. No Docker or store I/O happens
// under it: state is changed in memory, the lock released, then the I/O done.
// Container creation runs in goroutines bounded by a semaphore; the refill
// loop (Run) is woken by claims, ends and resizes, and by a ticker.
package pool
