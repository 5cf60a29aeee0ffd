// Package ids makes the public identifiers of chatpay objects: a short type
// prefix and 120 random bits in lower-case base32 ("item_k3j…"). Random ids
// reveal nothing about how many objects exist and cannot be guessed, so a
// foreign id is simply "not found".
package ids

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// New returns prefix + "_" + 24 base32 characters (15 random bytes).
func New(prefix string) string {
	var b [15]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return prefix + "_" + encoding.EncodeToString(b[:])
}

// Secret returns prefix + "_" + n random bytes in base32, for API keys and
// other bearer secrets (n ≥ 24 gives ≥ 192 bits).
func Secret(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + "_" + encoding.EncodeToString(b)
}

// HasPrefix reports whether id looks like one of ours with the given prefix.
func HasPrefix(id, prefix string) bool {
	return strings.HasPrefix(id, prefix+"_") && len(id) > len(prefix)+1 && len(id) <= 64
}
