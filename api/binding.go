package api

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
)

// NamePattern is what binding names must match.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

var capPattern = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// ValidName reports whether s may name a binding.
func ValidName(s string) bool { return namePattern.MatchString(s) }

// Defaults of a binding's optional fields.
const (
	DefaultPort             = 8888
	DefaultRedirect         = "tree"
	DefaultReadinessPath    = "api/status"
	DefaultReadinessTimeout = Duration(60 * time.Second)
)

// Normalize fills a binding's optional fields with their defaults and tidies
// paths (no leading slash). It does not validate.
func (b *Binding) Normalize() {
	if b.Port == 0 {
		b.Port = DefaultPort
	}
	b.Redirect = strings.TrimLeft(b.Redirect, "/")
	if b.Redirect == "" {
		b.Redirect = DefaultRedirect
	}
	b.Readiness.Path = strings.TrimLeft(b.Readiness.Path, "/")
	if b.Readiness.Path == "" {
		b.Readiness.Path = DefaultReadinessPath
	}
	if b.Readiness.Timeout == 0 {
		b.Readiness.Timeout = DefaultReadinessTimeout
	}
	for i, c := range b.CapAdd {
		b.CapAdd[i] = strings.TrimPrefix(strings.ToUpper(c), "CAP_")
	}
}

// Validate checks a normalized binding and returns an *Error naming the first
// field that is wrong.
func (b *Binding) Validate() error {
	if !ValidName(b.Name) {
		return ErrInvalidName.New("name", b.Name)
	}
	if err := ValidateImage(b.Image); err != nil {
		return err
	}
	if b.Port < 1 || b.Port > 65535 {
		return ErrInvalidBinding.New("reason", fmt.Sprintf("port %d is not between 1 and 65535", b.Port))
	}
	if err := ValidatePool(b.Pool.Min, b.Pool.Max); err != nil {
		return err
	}
	if _, err := ParseMemory(b.Limits.Memory); err != nil {
		return ErrInvalidBinding.New("reason", "limits.memory: "+err.Error())
	}
	if b.Limits.CPUs < 0 {
		return ErrInvalidBinding.New("reason", "limits.cpus is negative")
	}
	if b.Limits.Pids < 0 {
		return ErrInvalidBinding.New("reason", "limits.pids is negative")
	}
	for k := range b.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return ErrInvalidBinding.New("reason", fmt.Sprintf("env name %q is not valid", k))
		}
	}
	for _, c := range b.CapAdd {
		if !capPattern.MatchString(c) {
			return ErrInvalidBinding.New("reason", fmt.Sprintf("capAdd %q is not a capability name like NET_BIND_SERVICE", c))
		}
	}
	if strings.Contains(b.Redirect, "..") || strings.Contains(b.Readiness.Path, "..") {
		return ErrInvalidBinding.New("reason", "redirect and readiness.path may not contain '..'")
	}
	return nil
}

// ValidateImage checks that ref parses as a Docker image reference.
func ValidateImage(ref string) error {
	if ref == "" {
		return ErrInvalidImage.New("image", ref, "reason", "it is empty")
	}
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return ErrInvalidImage.New("image", ref, "reason", err)
	}
	return nil
}

// ValidatePool checks a pool size; max 0 means unbounded.
func ValidatePool(minPool, maxPool int) error {
	switch {
	case minPool < 0:
		return ErrInvalidPool.New("reason", fmt.Sprintf("minPool %d is negative", minPool))
	case maxPool < 0:
		return ErrInvalidPool.New("reason", fmt.Sprintf("maxPool %d is negative", maxPool))
	case maxPool > 0 && minPool > maxPool:
		return ErrInvalidPool.New("reason", fmt.Sprintf("minPool %d is more than maxPool %d", minPool, maxPool))
	}
	return nil
}

// ParseMemory reads a size like "512m", "2g", "1.5GiB" or "1048576" (bytes)
// as Docker does: suffixes are binary multiples. Empty means 0 (no limit).
func ParseMemory(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "" {
		return 0, nil
	}
	num := strings.TrimRight(s, "kmgtbi")
	unit := strings.TrimSuffix(strings.TrimSuffix(s[len(num):], "b"), "i")
	mult := map[string]float64{"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 || v < 0 {
		return 0, fmt.Errorf("%q is not a size like 512m or 2g", s)
	}
	return int64(v * mult), nil
}
