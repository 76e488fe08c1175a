#!/usr/bin/env bash
# Build nbpool's own image from the Dockerfile: ./contrib/build-image.sh [TAG]
# (default nbpool:latest).
#
# The Dockerfile builds in GOLANG_IMAGE (default golang:1.26-bookworm). On a
# host whose engine cannot pull it (no registry), and with no GOLANG_IMAGE
# given, this script first makes a local stand-in offline:
# $BASE_IMAGE (default nbpool-test/jupyter:latest, Debian bookworm; see
# `make images`) plus the host's Go ($(go env GOROOT)) and, as a file
# GOPROXY, the modules of go.sum taken from the host's module cache. So the
# build needs no network at all; `go mod download` inside it reads the file
# proxy. The stand-in is rebuilt only when the Go version, go.sum or the
# base image change (label org.nbpool.recipe).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-nbpool:latest}
base=${BASE_IMAGE:-nbpool-test/jupyter:latest}
version=${VERSION:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)}

golang=${GOLANG_IMAGE:-}
if [ -z "$golang" ] && docker image inspect golang:1.26-bookworm >/dev/null 2>&1; then
	golang=golang:1.26-bookworm
fi
if [ -z "$golang" ]; then
	docker image inspect "$base" >/dev/null 2>&1 ||
		{ echo "build-image: base image $base is missing (make image-jupyter, or set BASE_IMAGE or GOLANG_IMAGE)" >&2; exit 1; }
	goroot=$(go env GOROOT)
	modcache=$(go env GOMODCACHE)
	gover=$(go env GOVERSION)
	recipe=$( { echo "$gover"; cat "$root/go.sum"; docker image inspect --format '{{.Id}}' "$base"; } | sha256sum | cut -c1-16)
	golang=nbpool-local/golang:$gover
	# The module cache must hold every module go.sum names, not only those
	# a build here fetched: on a fresh machine, fill it first (needs the Go
	# module proxy; a no-op when the cache is complete).
	(cd "$root" && go mod download)
	if [ "$(docker image inspect --format '{{index .Config.Labels "org.nbpool.recipe"}}' "$golang" 2>/dev/null)" != "$recipe" ]; then
		ctx=$(mktemp -d)
		trap 'rm -rf "$ctx"' EXIT
		echo "build-image: making $golang from $base, $goroot and the host's module cache (offline)"
		cp -a "$goroot" "$ctx/go"
		(cd "$root" && GOMODCACHE="$ctx/mod" GOPROXY="file://$modcache/cache/download" \
			GOSUMDB=off GOFLAGS=-mod=mod go mod download)
		mv "$ctx/mod/cache/download" "$ctx/goproxy"
		chmod -R u+w "$ctx/mod" && rm -rf "$ctx/mod"
		cat >"$ctx/Dockerfile" <<-EOF
			FROM $base
			USER root
			COPY go /usr/local/go
			COPY goproxy /goproxy
			ENV PATH=/usr/local/go/bin:\$PATH GOPATH=/go GOTOOLCHAIN=local \
			    GOPROXY=file:///goproxy GOSUMDB=off
			WORKDIR /
			LABEL org.nbpool.recipe=$recipe
		EOF
		docker build -q -t "$golang" "$ctx" >/dev/null
	fi
fi

echo "build-image: building $tag with GOLANG_IMAGE=$golang"
docker build --build-arg GOLANG_IMAGE="$golang" --build-arg VERSION="$version" -t "$tag" "$root"
