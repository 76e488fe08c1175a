// Command tiny is the engine tests' stand-in for a notebook server: a static
// HTTP server that answers 200 on any path, so a test can see that a
// container is reachable at the address the engine reports.
//
// GET /env/<NAME> answers with the value of that environment variable, and
// GET /hog allocates memory until the kernel's OOM killer ends the process,
// for the tests of memory limits and oom events.
//
// It is built by the engine tests' TestMain into a FROM scratch image
// (nbpool-test/engine-tiny:latest); it is not part of nbpool.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
)

func main() {
	port := flag.Int("port", 8888, "TCP port to listen on")
	flag.Parse()

	mux := http.NewServeMux()
	mux.HandleFunc("/env/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getenv(strings.TrimPrefix(r.URL.Path, "/env/")))
	})
	mux.HandleFunc("/hog", func(w http.ResponseWriter, r *http.Request) {
		var hoard [][]byte
		for {
			chunk := make([]byte, 1<<20)
			for i := range chunk {
				chunk[i] = byte(i)
			}
			hoard = append(hoard, chunk)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok", r.URL.Path)
	})
	log.Fatal(http.ListenAndServe(fmt.Sprintf(":%d", *port), mux))
}
