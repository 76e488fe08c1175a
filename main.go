// Command nbpool turns a Docker host into an instant Jupyter service.
package main

import (
	"os"

	"github.com/nbpool/nbpool/cli"
)

// Set by the linker: -X main.version=… -X main.commit=….
var (
	version = "dev"
	commit  = ""
)

func main() {
	os.Exit(cli.Execute(version, commit))
}
