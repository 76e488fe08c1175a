# nbpool in a container. Build:  docker build -t nbpool .
# Run (the daemon drives the host's engine through its socket; it reaches the
# notebook containers by their IPs on the launch network, whose
# inter-container traffic is off, so it runs in the host's network namespace
# as a host process would):
#   docker run -d --name nbpool --network host \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v nbpool-data:/var/lib/nbpool -e NBPOOL_ADMIN_TOKEN=… nbpool
# GOLANG_IMAGE can name any image with Go 1.26 (a registry mirror, or a local
# one on a host without registry access).
ARG GOLANG_IMAGE=golang:1.26-bookworm

FROM ${GOLANG_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN go build -ldflags "-s -w -X main.version=${VERSION}" -o /out/nbpool . \
 && mkdir -p /out/data && chown 65532:65532 /out/data

FROM scratch
COPY --from=build /out/nbpool /nbpool
COPY --from=build --chown=65532:65532 /out/data /var/lib/nbpool
# Non-root: reaching the Docker socket takes its group (--group-add).
USER 65532:65532
ENV NBPOOL_LISTEN=0.0.0.0:8000 \
    NBPOOL_STORE=/var/lib/nbpool/nbpool.db
VOLUME /var/lib/nbpool
EXPOSE 8000
ENTRYPOINT ["/nbpool"]
CMD ["serve"]
