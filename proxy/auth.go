package proxy

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
)

// CookieName is the cookie in which the proxy keeps a launch's token once a
// request has shown it in the query (a browser opening its launch URL). It is
// scoped to /user/<id>/, HttpOnly, SameSite=Lax, and Secure over https.
const CookieName = "nbpool-token"

// authorize reports whether r may reach rt: the launch token in the
// CookieName cookie, the ?token= query parameter or the Authorization
// header ("token T" or "Bearer T"), compared in constant time. A good
// token from the query sets the cookie, unless the request already had a
// good cookie or is a protocol upgrade (whose answer comes from the
// backend). CORS preflights carry no credentials by design and
// pass, so the notebook server answers them with its own CORS policy.
//
// Nothing is stripped: the notebook server checks its own token too.
func (p *Proxy) authorize(w http.ResponseWriter, r *http.Request, rt *route, upgrade bool) bool {
	if len(rt.token) == 0 {
		return false
	}
	for _, c := range r.CookiesNamed(CookieName) {
		if rt.tokenIs(c.Value) {
			return true
		}
	}
	fromQuery := rt.tokenIs(queryToken(r.URL.RawQuery))
	if !fromQuery && !rt.tokenIs(headerToken(r.Header.Get("Authorization"))) {
		return r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	}
	// Browsers arrive with ?token= and need the cookie for what follows; API
	// clients send the header every time and need none.
	if fromQuery && !upgrade {
		http.SetCookie(w, &http.Cookie{
			Name:     CookieName,
			Value:    rt.Token,
			Path:     rt.prefix,
			HttpOnly: true,
			SameSite: http.SameSiteLaxMode,
			Secure:   p.isHTTPS(r),
		})
	}
	return true
}

// tokenIs compares t with the route's token in constant time (for tokens
// of the same length; the length of a launch token is no secret).
func (rt *route) tokenIs(t string) bool {
	return t != "" && subtle.ConstantTimeCompare([]byte(t), rt.token) == 1
}

// queryToken returns the first token parameter of a raw query, without
// parsing the rest of it.
func queryToken(raw string) string {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		v, ok := strings.CutPrefix(kv, "token=")
		if !ok {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			u, err := url.QueryUnescape(v)
			if err != nil {
				return ""
			}
			return u
		}
		return v
	}
	return ""
}

// headerToken returns T from "token T" or "Bearer T" (schemes are
// case-insensitive).
func headerToken(h string) string {
	scheme, t, ok := strings.Cut(h, " ")
	if !ok || !(strings.EqualFold(scheme, "token") || strings.EqualFold(scheme, "bearer")) {
		return ""
	}
	return strings.TrimSpace(t)
}

// isHTTPS reports whether the client reached us over https: TLS here, or a
// trusted front proxy says so.
func (p *Proxy) isHTTPS(r *http.Request) bool {
	return r.TLS != nil || p.opts.TrustForwardedProto && forwardedHTTPS(r)
}

// forwardedHTTPS reports whether the first X-Forwarded-Proto hop is https.
func forwardedHTTPS(r *http.Request) bool {
	v := r.Header.Get("X-Forwarded-Proto")
	if v == "" {
		return false
	}
	first, _, _ := strings.Cut(v, ",")
	return strings.EqualFold(strings.TrimSpace(first), "https")
}
