#!/usr/bin/env bash
# make run: serve nbpool on 127.0.0.1:8000 with the jupyter binding.
# With a config file argument, that file is used as is. Without one, the
# built-in default binding (quay.io/jupyter/minimal-notebook) is used when
# that image is here or can be pulled; otherwise the local Debian-built
# image (make image-jupyter) with testdata/jupyter.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin/nbpool

# An admin token for this machine, kept in .nbpool-admin-token.
if [ -z "${NBPOOL_ADMIN_TOKEN:-}" ]; then
  [ -s .nbpool-admin-token ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > .nbpool-admin-token
  NBPOOL_ADMIN_TOKEN=$(cat .nbpool-admin-token)
  export NBPOOL_ADMIN_TOKEN
fi
echo "admin token: $NBPOOL_ADMIN_TOKEN   (for the CLI: export NBPOOL_TOKEN=$NBPOOL_ADMIN_TOKEN)"

if [ $# -gt 0 ]; then
  exec "$bin" serve --config "$1"
fi

image=quay.io/jupyter/minimal-notebook:latest
if docker image inspect "$image" >/dev/null 2>&1 || timeout 120 docker pull "$image" >/dev/null 2>&1; then
  exec "$bin" serve
fi
echo "$image cannot be pulled here: using the local Debian-built Jupyter image (nbpool-test/jupyter)"
./testdata/images/jupyter/build.sh
export NBPOOL_INSTANCE=${NBPOOL_INSTANCE:-default}
exec "$bin" serve --config testdata/jupyter.yaml
