// Package e2e holds nbpool's end-to-end tests: daemons against the real
// Docker engine, the notebook images built by `make images`, and, for the
// browser tests, Debian's chromium driven by chromedp. They skip only when
// no Docker engine answers; a missing image or browser is a failure that
// says how to get it.
//
// Screenshots go to the test's artifact directory (go test -artifacts
// -outputdir DIR keeps them), or to $NBPOOL_TEST_ARTIFACTS/<test> when that
// is set.
package e2e
