package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"strings"
)

// Key format: "sk-" + 42 random base62 characters + a 6-character base62
// CRC-32 (IEEE) checksum of those 42 characters, so a typo or a made-up key is
// refused without a storage call and secret scanners can confirm a leaked key
// offline. The 48 characters keep new-api's format (sk- + 48 alphanumerics).
const (
	KeyPrefix      = "sk-"
	keyBodyLen     = 42
	keyChecksumLen = 6
	KeyLength      = keyBodyLen + keyChecksumLen // characters after the prefix
	base62         = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	maskVisible    = 4 // characters shown at each end of a masked key
)

// ErrMalformedKey is returned for a string that cannot be a key: wrong length,
// a character outside [0-9A-Za-z], or a checksum that does not match.
var ErrMalformedKey = errors.New("token: malformed key")

// NewKey returns a fresh key from crypto/rand.
func NewKey() (string, error) {
	var b strings.Builder
	b.Grow(len(KeyPrefix) + KeyLength)
	b.WriteString(KeyPrefix)
	// Rejection sampling keeps every character uniform: 248 = 4*62.
	buf := make([]byte, 64)
	n := 0
	for n < keyBodyLen {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, c := range buf {
			if c >= 248 {
				continue
			}
			b.WriteByte(base62[c%62])
			if n++; n == keyBodyLen {
				break
			}
		}
	}
	body := b.String()[len(KeyPrefix):]
	b.WriteString(checksum(body))
	return b.String(), nil
}

// checksum is the base62 CRC-32 of body, left-padded with '0' to 6 characters.
func checksum(body string) string {
	var out [keyChecksumLen]byte
	v := crc32.ChecksumIEEE([]byte(body))
	for i := keyChecksumLen - 1; i >= 0; i-- {
		out[i] = base62[v%62]
		v /= 62
	}
	return string(out[:])
}

// ParseKey checks s, with or without the sk- prefix, and returns the key in
// its canonical form (with the prefix). It makes no storage call.
func ParseKey(s string) (string, error) {
	s = strings.TrimPrefix(s, KeyPrefix)
	if len(s) != KeyLength {
		return "", ErrMalformedKey
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(base62, s[i]) < 0 {
			return "", ErrMalformedKey
		}
	}
	if checksum(s[:keyBodyLen]) != s[keyBodyLen:] {
		return "", ErrMalformedKey
	}
	return KeyPrefix + s, nil
}

// ParseLegacyKey is ParseKey without the checksum: it accepts any key of
// the right shape (sk- optional, then 48 of [0-9A-Za-z]), as the keys of
// new-api and one-api that cmd/admin import brings have no checksum. Used
// only where template parameter AcceptLegacyKeys is true (KeyParser); a
// key that fails the checksum then costs a lookup instead of none.
func ParseLegacyKey(s string) (string, error) {
	s = strings.TrimPrefix(s, KeyPrefix)
	if len(s) != KeyLength {
		return "", ErrMalformedKey
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(base62, s[i]) < 0 {
			return "", ErrMalformedKey
		}
	}
	return KeyPrefix + s, nil
}

// KeyParser returns the parser of keys a deployment accepts: ParseKey,
// or ParseLegacyKey when acceptLegacy (template parameter AcceptLegacyKeys).
func KeyParser(acceptLegacy bool) func(string) (string, error) {
	if acceptLegacy {
		return ParseLegacyKey
	}
	return ParseKey
}

// HasChecksum reports whether a canonical key carries the checksum of the
// keys made here (NewKey); imported keys usually do not.
func HasChecksum(key string) bool {
	_, err := ParseKey(key)
	return err == nil
}

// HashKey returns the hex SHA-256 of a canonical key: what the store looks
// keys up by.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// MaskKey returns the displayed form of a canonical key:
// sk- + the first 4 characters + 10 asterisks + the last 4.
func MaskKey(key string) string {
	body := strings.TrimPrefix(key, KeyPrefix)
	if len(body) < 2*maskVisible {
		return KeyPrefix + strings.Repeat("*", 10)
	}
	return KeyPrefix + body[:maskVisible] + strings.Repeat("*", 10) + body[len(body)-maskVisible:]
}

// MatchesKeyFragment reports whether fragment matches the visible characters of
// a masked key: a substring of its first or last 4 characters, or, when the
// fragment starts with sk-, a prefix of the masked key's visible head. A
// fragment holding '*' is a piece of the masked key as the list shows it
// (sk-abcd**********wxyz, abcd***) and matches as a substring of the mask.
func MatchesKeyFragment(mask, fragment string) bool {
	if fragment == "" {
		return true
	}
	if strings.ContainsRune(fragment, '*') {
		return strings.Contains(mask, fragment)
	}
	body := strings.TrimPrefix(mask, KeyPrefix)
	if len(body) < 2*maskVisible {
		return false
	}
	head, tail := body[:maskVisible], body[len(body)-maskVisible:]
	if rest, ok := strings.CutPrefix(fragment, KeyPrefix); ok {
		return strings.HasPrefix(head, rest)
	}
	return strings.Contains(head, fragment) || strings.Contains(tail, fragment)
}
