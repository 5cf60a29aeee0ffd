package payments

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// VK Mini Apps (and the TamTam/MAX bots that open VK-style mini apps) append
// launch parameters to the app's URL:
//
//	vk_access_token_settings=&vk_app_id=6736218&vk_language=ru&vk_platform=android
//	&vk_ts=1733509682&vk_user_id=494075&sign=htQFduJpLxz7ribXRZpDFUH-XEUhC9rBPTJkjUFEkRA
//
// sign is, as VK documents ("Параметры запуска", dev.vk.com/mini-apps/development/launch-params-sign):
//
//	base64url without padding of HMAC-SHA256(key = the app's protected key,
//	    message = the vk_* parameters sorted by name, URL-encoded as
//	    name=value and joined by "&")
//
// Other parameters (the hash fragment's start parameter, chatpay's own) are
// not signed and ignored.
const (
	vkLaunchBytesMax = 4 << 10
	vkFieldBytesMax  = 512
	vkFieldsMax      = 32
)

// VKKeys verify one VK app's launch parameters.
type VKKeys struct {
	AppID  int64
	Secret string
}

// VerifyVKLaunch checks VK launch parameters at now. It returns
// invalid_launch_context (401) with a plain reason.
func VerifyVKLaunch(raw string, keys VKKeys, now time.Time, maxAge time.Duration) (Launch, error) {
	fields, err := parseVKLaunch(raw)
	if err != nil {
		return Launch{}, err
	}
	if keys.Secret == "" || keys.AppID <= 0 {
		return Launch{}, launchRefused("this channel has no VK app secret to verify launch parameters with")
	}
	got, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(fields["sign"], "="))
	if err != nil || !hmac.Equal(got, vkSign(keys.Secret, fields)) {
		return Launch{}, launchRefused("the VK launch parameters' sign does not match this app's secret: they were changed, or made for another app")
	}
	if fields["vk_app_id"] != strconv.FormatInt(keys.AppID, 10) {
		return Launch{}, launchRefused("the launch parameters are for VK app %q, not this channel's app %d", fields["vk_app_id"], keys.AppID)
	}
	authDate, err := checkAuthDate(fields["vk_ts"], now, maxAge)
	if err != nil {
		return Launch{}, err
	}
	user := fields["vk_user_id"]
	if id, err := strconv.ParseInt(user, 10, 64); err != nil || id <= 0 {
		return Launch{}, launchRefused("vk_user_id must be a positive number")
	}
	return Launch{
		UserID: user, ChatID: user, AuthDate: authDate, Fields: fields,
		Messenger: "vk", Language: fields["vk_language"], StartParam: fields["vk_ref"],
	}, nil
}

func parseVKLaunch(raw string) (map[string]string, error) {
	raw = strings.TrimPrefix(raw, "?")
	if raw == "" {
		return nil, launchRefused("no VK launch parameters: open this page from the VK Mini App")
	}
	if len(raw) > vkLaunchBytesMax {
		return nil, launchRefused("the VK launch parameters are longer than %d bytes", vkLaunchBytesMax)
	}
	values, err := url.ParseQuery(raw)
	if err != nil {
		return nil, launchRefused("the VK launch parameters are not a URL-encoded query string")
	}
	if len(values) > vkFieldsMax {
		return nil, launchRefused("the VK launch parameters have %d fields, more than %d", len(values), vkFieldsMax)
	}
	fields := make(map[string]string, len(values))
	for key, vs := range values {
		if len(vs) != 1 {
			return nil, launchRefused("field %q appears %d times", key, len(vs))
		}
		switch v := vs[0]; {
		case len(v) > vkFieldBytesMax:
			return nil, launchRefused("field %q is longer than %d bytes", key, vkFieldBytesMax)
		case strings.ContainsRune(key+v, 0):
			return nil, launchRefused("field %q contains a NUL byte", key)
		case !utf8.ValidString(key) || !utf8.ValidString(v):
			return nil, launchRefused("field %q is not UTF-8 text", key)
		}
		fields[key] = vs[0]
	}
	if fields["sign"] == "" {
		return nil, launchRefused("the VK launch parameters carry no sign")
	}
	return fields, nil
}

// vkSign is the HMAC VK puts in sign.
func vkSign(secret string, fields map[string]string) []byte {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if strings.HasPrefix(k, "vk_") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = vkEscape(k) + "=" + vkEscape(fields[k])
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strings.Join(parts, "&")))
	return mac.Sum(nil)
}

// vkEscape is the escaping of VK's reference code (Node's querystring:
// encodeURIComponent, which leaves A-Z a-z 0-9 - _ . ! ~ * ' ( ) alone).
func vkEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(strconv.FormatInt(int64(c)>>4, 16)+strconv.FormatInt(int64(c)&15, 16)))
	}
	return b.String()
}

// SignVKLaunch makes VK launch parameters signed with secret, for tests and
// chat-sim.
func SignVKLaunch(secret string, fields map[string]string) string {
	values := url.Values{}
	for k, v := range fields {
		values.Set(k, v)
	}
	values.Set("sign", base64.RawURLEncoding.EncodeToString(vkSign(secret, fields)))
	return values.Encode()
}
