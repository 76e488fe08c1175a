package main

import (
	"math"
	"slices"
	"time"
)

// sample is a set of measured durations.
type sample []time.Duration

// pct returns the p-th percentile (0 < p ≤ 100) by the nearest-rank
// method; 0 for an empty sample.
func (s sample) pct(p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	return s.sorted().rank(p)
}

// sorted is a sorted copy of s.
func (s sample) sorted() sample {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// rank is pct of a sorted, non-empty sample.
func (s sample) rank(p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = max(1, min(rank, len(s)))
	return s[rank-1]
}

// median of float64 values; 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// summary is the percentiles of a sample in milliseconds, for the JSON.
type summary struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50Ms"`
	P90 float64 `json:"p90Ms"`
	P99 float64 `json:"p99Ms"`
	Max float64 `json:"maxMs"`
}

func (s sample) summary() summary {
	if len(s) == 0 {
		return summary{}
	}
	o := s.sorted() // once for the four percentiles
	return summary{N: len(s), P50: ms(o.rank(50)), P90: ms(o.rank(90)), P99: ms(o.rank(99)), Max: ms(o.rank(100))}
}
