//go:build !race

package proxy

// raceFactor is 1 when the race detector is on.
const raceFactor = 0
