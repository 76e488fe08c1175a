package store

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nbpool/nbpool/api"
)

// BenchmarkUpdateLaunchParallel claims launches from 10 goroutines at once,
// like 10 concurrent API clients that never pause, and from 1, in a store
// holding 500 live and 5000 ended launches. It compares the store's group
// commit with one plain transaction (and fsync pair) per call and with
// bbolt's DB.Batch, and reports the p50 and p99 latency of a call besides
// ns/op (the inverse of throughput).
func BenchmarkUpdateLaunchParallel(b *testing.B) {
	type writer = func(func(*bolt.Tx) error) error
	modes := []struct {
		name  string
		write func(s *Store) writer
	}{
		{"group(default)", func(s *Store) writer { return s.batch }},
		{"update", func(s *Store) writer { return s.db.Update }},
		{"bbolt-batch=500µs", func(s *Store) writer { s.db.MaxBatchDelay = 500 * time.Microsecond; return s.db.Batch }},
		{"bbolt-batch=10ms(bbolt default)", func(s *Store) writer { s.db.MaxBatchDelay = 10 * time.Millisecond; return s.db.Batch }},
	}
	for _, clients := range []int{10, 1} {
		for _, m := range modes {
			b.Run(fmt.Sprintf("clients=%d/%s", clients, m.name), func(b *testing.B) {
				s := benchStore(b, 500, 5000)
				s.batch = m.write(s)
				benchUpdates(b, s, clients)
			})
		}
	}
}

// benchUpdates runs b.N claims from clients goroutines, each on its own
// launch, and reports the p50 and p99 latency of a call.
func benchUpdates(b *testing.B, s *Store, clients int) {
	var (
		next      atomic.Int64
		mu        sync.Mutex
		latencies []time.Duration
	)
	procs := runtime.GOMAXPROCS(0)
	if clients >= procs {
		b.SetParallelism((clients + procs - 1) / procs)
	} else {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(clients))
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprintf("live%04d", next.Add(1)%500)
		var mine []time.Duration
		for pb.Next() {
			start := time.Now()
			_, err := s.UpdateLaunch(b.Context(), id, func(l *api.Launch) error {
				l.State, l.Claimed, l.Reserved = api.StateClaimed, start, !l.Reserved
				return nil
			})
			mine = append(mine, time.Since(start))
			if err != nil {
				b.Error(err)
				return
			}
		}
		mu.Lock()
		latencies = append(latencies, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	slices.Sort(latencies)
	if n := len(latencies); n > 0 {
		b.ReportMetric(float64(latencies[n/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(latencies[n*99/100].Microseconds()), "p99-µs")
	}
}

// benchStore returns a store with live launches live0000… and ended ones.
func benchStore(b *testing.B, live, ended int) *Store {
	b.Helper()
	s := openStore(b, Options{})
	err := s.db.Update(func(tx *bolt.Tx) error { // one transaction: fast setup
		for i := range live + ended {
			l := launch(fmt.Sprintf("live%04d", i), "bench", api.StateAvailable, time.Duration(i))
			if i >= live {
				l = launch("ended"+strconv.Itoa(i), "bench", api.StateEnded, time.Duration(i))
			}
			l.ContainerID = fmt.Sprintf("%064x", i)
			l.Address = "172.18.0.2:8888"
			var err error
			if l.State == api.StateEnded {
				err = endLaunch(tx, &l)
			} else {
				err = putJSON(tx.Bucket([]byte(bucketLive)), l.ID, l)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return s
}
