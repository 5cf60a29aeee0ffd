package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks header names.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

const (
	secretPrefix = "whsec_"
	// VerifyToleranceDefault is the timestamp tolerance the spec recommends.
	VerifyToleranceDefault = 5 * time.Minute
	// signaturesPerHeaderMax bounds the work a hostile header can cause.
	signaturesPerHeaderMax = 8
)

// NewSecret returns "whsec_" + base64 of secretRandomBytes random bytes.
func NewSecret() string {
	b := make([]byte, secretRandomBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return secretPrefix + base64.StdEncoding.EncodeToString(b)
}

// secretKey decodes the HMAC key of a whsec_ secret.
func secretKey(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil || len(key) == 0 {
		return nil, ErrInvalidSecret
	}
	return key, nil
}

// Sign returns "v1,<base64 HMAC-SHA256 of id.timestamp.body>".
func Sign(secret, id string, timestamp time.Time, body []byte) (string, error) {
	key, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, timestamp.Unix(), body)), nil
}

func mac(key []byte, id string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(strconv.FormatInt(unix, 10)))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// signatureHeader signs with every given secret, space-separated, as the spec
// allows during a rotation.
func signatureHeader(secrets []string, id string, timestamp time.Time, body []byte) (string, error) {
	parts := make([]string, 0, len(secrets))
	for _, s := range secrets {
		sig, err := Sign(s, id, timestamp, body)
		if err != nil {
			return "", err
		}
		parts = append(parts, sig)
	}
	return strings.Join(parts, " "), nil
}

// Verify checks a webhook the way a receiver should: the three headers are
// present, the timestamp is within tolerance of now (pass
// VerifyToleranceDefault), and one of the v1 signatures matches secret. It
// returns ErrMissingHeaders, ErrInvalidTimestamp, ErrTimestampTooOld,
// ErrTimestampTooNew, ErrInvalidSecret or ErrNoMatchingSignature.
func Verify(secret string, header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	id, ts, sigs := header.Get(HeaderID), header.Get(HeaderTimestamp), header.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return ErrMissingHeaders
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrInvalidTimestamp, ts)
	}
	sent := time.Unix(unix, 0)
	if now.Sub(sent) > tolerance {
		return ErrTimestampTooOld
	}
	if sent.Sub(now) > tolerance {
		return ErrTimestampTooNew
	}
	key, err := secretKey(secret)
	if err != nil {
		return err
	}
	expected := mac(key, id, unix, body)
	for i, field := range strings.Fields(sigs) {
		if i >= signaturesPerHeaderMax {
			break
		}
		version, encoded, ok := strings.Cut(field, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			continue
		}
		if hmac.Equal(got, expected) {
			return nil
		}
	}
	return ErrNoMatchingSignature
}
