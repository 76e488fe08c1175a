// Package proxy routes /user/<id>/ — HTTP and websockets — to the notebook
// container of launch <id>. It replaces configurable-http-proxy inside the
// nbpool daemon.
//
// The route table lives in memory (a sync.Map read without locks). Each
// route has its own httputil.ReverseProxy, made in Add, whose Rewrite knows
// the target; all routes share one http.Transport and one pool of copy
// buffers, so requests and responses of any size stream in constant memory.
// Websocket upgrades are not left to ReverseProxy: the proxy forwards the
// handshake itself and then copies bytes both ways in a tunnel it can count,
// close (Remove, CloseWebsockets) and watch for activity.
//
// Access to a launch needs its token: ?token=, the Authorization header, or
// the CookieName cookie the proxy sets on the first good token. Every
// proxied request, response chunk and websocket chunk moves the launch's
// lastActivity, which the culler reads through LastActivity and the store
// through ActivitySince.
//
// # Caveats
//
//   - Mount the Proxy where nothing cleans or unescapes the path first:
//     http.ServeMux redirects paths with "//" or "..", and gorilla/mux does
//     too unless SkipClean(true). The id is taken from the escaped path and
//     the rest is forwarded byte for byte.
//   - The http.Server must not set ReadTimeout or WriteTimeout (only
//     ReadHeaderTimeout): they would cut downloads, uploads and event
//     streams that run long.
//   - http.Server.Shutdown does not wait for hijacked connections; call
//     CloseWebsockets after it.
//   - Websockets over HTTP/2 (extended CONNECT) are not supported; browsers
//     fall back to HTTP/1.1 for them.
//   - A route's idle keep-alive connections outlive Remove until the
//     container closes them or 90 s pass.
package proxy
