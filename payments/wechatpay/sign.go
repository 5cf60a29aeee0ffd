package wechatpay

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// AuthScheme is APIv3's Authorization scheme: SHA256 with RSA (PKCS #1
// v1.5) over a 2048-bit merchant key.
const AuthScheme = "WECHATPAY2-SHA256-RSA2048"

// Names of the headers WeChat Pay signs its answers and notifications with.
const (
	HeaderTimestamp = "Wechatpay-Timestamp"
	HeaderNonce     = "Wechatpay-Nonce"
	HeaderSignature = "Wechatpay-Signature"
	HeaderSerial    = "Wechatpay-Serial"
)

// RequestMessage is the string a merchant signs for one request: method,
// the URL's path and query, the timestamp (Unix seconds), the nonce and the
// body, each followed by "\n" (the body too, and an empty body is an empty
// line).
func RequestMessage(method, pathAndQuery, timestamp, nonce string, body []byte) []byte {
	return []byte(method + "\n" + pathAndQuery + "\n" + timestamp + "\n" + nonce + "\n" + string(body) + "\n")
}

// AnswerMessage is the string WeChat Pay signs for an answer or a
// notification: timestamp, nonce and body, each followed by "\n".
func AnswerMessage(timestamp, nonce string, body []byte) []byte {
	return []byte(timestamp + "\n" + nonce + "\n" + string(body) + "\n")
}

// Sign is base64(SHA256withRSA(message)) under key.
func Sign(key *rsa.PrivateKey, message []byte) (string, error) {
	digest := sha256.Sum256(message)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// Verify checks a base64 SHA256withRSA signature of message under key.
func Verify(key *rsa.PublicKey, message []byte, signature string) error {
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return fmt.Errorf("signature is not base64: %w", err)
	}
	digest := sha256.Sum256(message)
	return rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig)
}

// Authorization is the Authorization header of a request signed by the
// merchant mchID with the key of its API certificate serial.
func Authorization(mchID, serial, nonce, timestamp, signature string) string {
	return fmt.Sprintf(`%s mchid="%s",nonce_str="%s",signature="%s",timestamp="%s",serial_no="%s"`,
		AuthScheme, mchID, nonce, signature, timestamp, serial)
}

// ParseAuthorization reads an Authorization header's fields (the fake
// server checks requests with it).
func ParseAuthorization(header string) (map[string]string, error) {
	rest, ok := strings.CutPrefix(header, AuthScheme+" ")
	if !ok {
		return nil, errors.New("not a " + AuthScheme + " authorization")
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || len(value) < 2 || value[0] != '"' || value[len(value)-1] != '"' {
			return nil, fmt.Errorf("malformed authorization field %q", part)
		}
		fields[name] = value[1 : len(value)-1]
	}
	for _, name := range []string{"mchid", "nonce_str", "signature", "timestamp", "serial_no"} {
		if fields[name] == "" {
			return nil, fmt.Errorf("authorization lacks %s", name)
		}
	}
	return fields, nil
}

// Nonce is a random 32-character request nonce.
func Nonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on Linux
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// APIv3KeyLength is the length of the APIv3 key: AES-256 takes its 32
// ASCII characters as the key bytes.
const APIv3KeyLength = 32

// Decrypt opens a notification's resource (AEAD_AES_256_GCM): the
// ciphertext is base64 of the sealed data with its 16-byte tag; nonce and
// associated data are plain strings.
func Decrypt(apiV3Key, nonce, associatedData, ciphertext string) ([]byte, error) {
	aead, err := newAEAD(apiV3Key)
	if err != nil {
		return nil, err
	}
	sealed, err := base64.StdEncoding.DecodeString(ciphertext)
	if err != nil {
		return nil, fmt.Errorf("ciphertext is not base64: %w", err)
	}
	if len(nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("nonce of %d bytes, want %d", len(nonce), aead.NonceSize())
	}
	plain, err := aead.Open(nil, []byte(nonce), sealed, []byte(associatedData))
	if err != nil {
		return nil, fmt.Errorf("decrypt resource: %w", err)
	}
	return plain, nil
}

// Encrypt seals plain as WeChat Pay does for a notification resource.
func Encrypt(apiV3Key, nonce, associatedData string, plain []byte) (string, error) {
	aead, err := newAEAD(apiV3Key)
	if err != nil {
		return "", err
	}
	if len(nonce) != aead.NonceSize() {
		return "", fmt.Errorf("nonce of %d bytes, want %d", len(nonce), aead.NonceSize())
	}
	return base64.StdEncoding.EncodeToString(aead.Seal(nil, []byte(nonce), plain, []byte(associatedData))), nil
}

func newAEAD(apiV3Key string) (cipher.AEAD, error) {
	if len(apiV3Key) != APIv3KeyLength {
		return nil, fmt.Errorf("the APIv3 key has %d characters, want %d", len(apiV3Key), APIv3KeyLength)
	}
	block, err := aes.NewCipher([]byte(apiV3Key))
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	return cipher.NewGCM(block)
}

// ParsePrivateKey reads the merchant's apiclient_key.pem (PKCS #8, or
// PKCS #1).
func ParsePrivateKey(pemData []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemData)
	if block == nil {
		return nil, errors.New("no PEM block in the merchant private key")
	}
	if key, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return key, nil
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("merchant private key: %w", err)
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("the merchant private key is not RSA")
	}
	return key, nil
}

// ParsePublicKey reads WeChat Pay's public key: the "WeChat Pay public key"
// (PUBLIC KEY PEM) or a platform certificate (CERTIFICATE PEM).
func ParsePublicKey(pemData []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(pemData)
	if block == nil {
		return nil, errors.New("no PEM block in the WeChat Pay public key")
	}
	var parsed any
	var err error
	if block.Type == "CERTIFICATE" {
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			parsed = cert.PublicKey
		}
	} else {
		parsed, err = x509.ParsePKIXPublicKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("WeChat Pay public key: %w", err)
	}
	key, ok := parsed.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("the WeChat Pay public key is not RSA")
	}
	return key, nil
}
