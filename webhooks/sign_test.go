package webhooks

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func signedHeader(t *testing.T, secrets []string, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	sig, err := signatureHeader(secrets, id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return h
}

// TestSignatureInterop checks our signatures with the Standard Webhooks
// reference library, and our Verify against its signatures.
func TestSignatureInterop(t *testing.T) {
	secret := NewSecret()
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q lacks whsec_", secret)
	}
	body := []byte(`{"id":"evt_1","type":"order.paid","data":{"message":"Paid 3.00 CNY"}}`)
	now := time.Now()
	ref, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("OK", func(t *testing.T) {
		h := signedHeader(t, []string{secret}, "evt_1", now, body)
		if err := ref.Verify(body, h); err != nil {
			t.Fatalf("reference library refused our signature: %v", err)
		}
		refSig, err := ref.Sign("evt_1", now, body)
		if err != nil {
			t.Fatal(err)
		}
		if refSig != h.Get(HeaderSignature) {
			t.Fatalf("signatures differ: ours %s, reference %s", h.Get(HeaderSignature), refSig)
		}
		if err := Verify(secret, h, body, VerifyToleranceDefault, now); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})
	t.Run("ErrTamperedBody", func(t *testing.T) {
		h := signedHeader(t, []string{secret}, "evt_1", now, body)
		tampered := []byte(strings.Replace(string(body), "3.00", "300.00", 1))
		if err := ref.Verify(tampered, h); err == nil {
			t.Fatal("reference library accepted a tampered body")
		}
		if err := Verify(secret, h, tampered, VerifyToleranceDefault, now); !errors.Is(err, ErrNoMatchingSignature) {
			t.Fatalf("Verify = %v, want ErrNoMatchingSignature", err)
		}
	})
	t.Run("ErrWrongSecret", func(t *testing.T) {
		h := signedHeader(t, []string{secret}, "evt_1", now, body)
		other := NewSecret()
		otherRef, _ := standardwebhooks.NewWebhook(other)
		if err := otherRef.Verify(body, h); err == nil {
			t.Fatal("reference library accepted another secret")
		}
		if err := Verify(other, h, body, VerifyToleranceDefault, now); !errors.Is(err, ErrNoMatchingSignature) {
			t.Fatalf("Verify = %v, want ErrNoMatchingSignature", err)
		}
	})
	t.Run("ErrTimestampOutsideTolerance", func(t *testing.T) {
		old := signedHeader(t, []string{secret}, "evt_1", now.Add(-6*time.Minute), body)
		if err := ref.Verify(body, old); err == nil {
			t.Fatal("reference library accepted an old timestamp")
		}
		if err := Verify(secret, old, body, VerifyToleranceDefault, now); !errors.Is(err, ErrTimestampTooOld) {
			t.Fatalf("Verify = %v, want ErrTimestampTooOld", err)
		}
		future := signedHeader(t, []string{secret}, "evt_1", now.Add(6*time.Minute), body)
		if err := ref.Verify(body, future); err == nil {
			t.Fatal("reference library accepted a future timestamp")
		}
		if err := Verify(secret, future, body, VerifyToleranceDefault, now); !errors.Is(err, ErrTimestampTooNew) {
			t.Fatalf("Verify = %v, want ErrTimestampTooNew", err)
		}
		within := signedHeader(t, []string{secret}, "evt_1", now.Add(-4*time.Minute), body)
		if err := Verify(secret, within, body, VerifyToleranceDefault, now); err != nil {
			t.Fatalf("Verify within tolerance: %v", err)
		}
	})
	t.Run("ErrMissingHeaders", func(t *testing.T) {
		if err := Verify(secret, http.Header{}, body, VerifyToleranceDefault, now); !errors.Is(err, ErrMissingHeaders) {
			t.Fatalf("Verify = %v, want ErrMissingHeaders", err)
		}
	})
	t.Run("OKRotation", func(t *testing.T) {
		newSecret := NewSecret()
		h := signedHeader(t, []string{newSecret, secret}, "evt_1", now, body)
		if n := len(strings.Fields(h.Get(HeaderSignature))); n != 2 {
			t.Fatalf("rotation header has %d signatures, want 2", n)
		}
		for _, s := range []string{secret, newSecret} {
			r, _ := standardwebhooks.NewWebhook(s)
			if err := r.Verify(body, h); err != nil {
				t.Fatalf("reference library with one of the secrets: %v", err)
			}
			if err := Verify(s, h, body, VerifyToleranceDefault, now); err != nil {
				t.Fatalf("Verify with one of the secrets: %v", err)
			}
		}
	})
}

// TestSignatureSpecVector is the example of the Standard Webhooks spec.
func TestSignatureSpecVector(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"test": 2432232314}`)
	ts := time.Unix(1614265330, 0)
	got, err := Sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}
