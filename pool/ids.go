package pool

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"slices"
	"strings"

	"github.com/nbpool/nbpool/api"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// idLength is the length of launch ids: 20 base62 characters, 119 bits.
const idLength = 20

// newID returns a random launch id of base62 characters.
func newID() string {
	var b [idLength]byte
	// Rejection sampling keeps the characters uniform: 248 = 4 * 62.
	out := make([]byte, 0, idLength)
	for len(out) < idLength {
		_, _ = rand.Read(b[:])
		for _, c := range b {
			if c < 248 && len(out) < idLength {
				out = append(out, base62[c%62])
			}
		}
	}
	return string(out)
}

// newToken returns 32 random bytes in hex.
func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// basePath is a launch's base URL path.
func basePath(id string) string { return "/user/" + id + "/" }

// launchURI is a launch's resource in the API.
func launchURI(binding, id string) string { return "/api/binders/" + binding + "/" + id }

// launchURL is the path a visitor opens: base, redirect (or path) and token.
func launchURL(id, token, redirect, path string) string {
	if path != "" {
		redirect = path
	}
	return basePath(id) + strings.TrimLeft(redirect, "/") + "?token=" + url.QueryEscape(token)
}

func sortLaunches(ls []api.Launch) {
	slices.SortFunc(ls, func(a, b api.Launch) int { return a.Created.Compare(b.Created) })
}
