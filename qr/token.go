package qr

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
)

// Token format: TokenBytes random bytes from crypto/rand in unpadded
// lower-case base32, which is URL-safe, case-free for people reading it aloud,
// and free of characters a QR scanner or a chat client might mangle.
const (
	// TokenBytes is 16: 128 bits cannot be guessed or enumerated, and the
	// URL stays short enough for a small QR version.
	TokenBytes = 16
	// TokenLength is the encoded length: ceil(128 / 5) = 26 characters.
	TokenLength = (TokenBytes*8 + 4) / 5
	// TokenAlphabet is the base32 alphabet the token uses.
	TokenAlphabet = "abcdefghijklmnopqrstuvwxyz234567"
)

var tokenEncoding = base32.NewEncoding(TokenAlphabet).WithPadding(base32.NoPadding)

// NewToken returns a fresh random token.
func NewToken() (string, error) {
	var b [TokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random token: %w", err)
	}
	return tokenEncoding.EncodeToString(b[:]), nil
}

// ParseToken checks that s is a token in canonical form: exactly TokenLength
// characters of TokenAlphabet whose unused trailing bits are zero, so every
// token has exactly one spelling. Anything else is qr_not_found: a malformed
// token cannot match a code, and answering it without a database round trip
// keeps junk from scanners cheap.
func ParseToken(s string) (string, error) {
	if len(s) != TokenLength {
		return "", errNotFound()
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return "", errNotFound()
		}
	}
	b, err := tokenEncoding.DecodeString(s)
	if err != nil || len(b) != TokenBytes || tokenEncoding.EncodeToString(b) != s {
		return "", errNotFound()
	}
	return s, nil
}
