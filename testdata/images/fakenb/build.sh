#!/usr/bin/env bash
# Build nbpool-test/fakenb:latest: a static fakenb binary in a scratch image.
#
# The image is labelled org.nbpool.recipe=<sha256 of binary + Dockerfile>;
# when the tagged image already carries the same label, docker build is
# skipped, so repeated runs cost one go build (itself cached) and one
# docker image inspect. Runnable from any directory.
set -euo pipefail

image=nbpool-test/fakenb:latest
dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
cd "$dir"

tmp=fakenb.tmp.$$
trap 'rm -f "$tmp"' EXIT
CGO_ENABLED=0 GOOS=linux go build -trimpath -buildvcs=false -ldflags '-s -w' -o "$tmp" .
mv -f "$tmp" fakenb

recipe=$(cat fakenb Dockerfile | sha256sum | cut -d' ' -f1)
have=$(docker image inspect --format '{{index .Config.Labels "org.nbpool.recipe"}}' "$image" 2>/dev/null || true)
if [[ "$have" == "$recipe" ]]; then
	echo "$image is up to date (recipe ${recipe:0:12})"
	exit 0
fi

# The legacy builder needs nothing from a registry; its output (and its
# deprecation notice) is shown only when the build fails.
if ! out=$(DOCKER_BUILDKIT=0 docker build --label "org.nbpool.recipe=$recipe" -t "$image" . 2>&1); then
	printf '%s\n' "$out" >&2
	exit 1
fi
echo "built $image (recipe ${recipe:0:12})"
