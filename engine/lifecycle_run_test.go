package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// A Run whose context ends at any moment, the create request in flight
// included, leaves nothing behind: the engine would otherwise finish
// creating a container nobody knows the ID of (seen as "Created" leftovers
// of daemons stopped mid-creation).
func TestRunCancelledLeavesNothing(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	var (
		wg             sync.WaitGroup
		mu             sync.Mutex
		ok, cancelled  int
		cancelledNames []string
	)
	for i := range 24 {
		wg.Go(func() {
			// From before the request to well after the container runs.
			ctx, cancel := context.WithTimeout(t.Context(), time.Duration(i*i*8)*time.Millisecond)
			defer cancel()
			s := spec(e, fmt.Sprintf("cancel%d", i))
			_, err := e.Run(ctx, s)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok++
			} else {
				cancelled++
				cancelledNames = append(cancelledNames, s.Name)
			}
		})
	}
	wg.Wait()
	time.Sleep(2 * time.Second) // creations the engine would finish late
	cs, err := e.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d runs succeeded, %d were cancelled; %d containers", ok, cancelled, len(cs))
	left := map[string]bool{}
	for _, c := range cs {
		left[c.Name] = true
	}
	for _, name := range cancelledNames {
		if left[name] {
			t.Errorf("cancelled Run left %s behind", name)
		}
	}
	if len(cs) != ok {
		t.Errorf("%d containers for %d successful runs", len(cs), ok)
	}
}
