package auth

import (
	"errors"
	"strings"
)

// ErrNoCredential is an Authorization header that carries no credential:
// missing, empty, only white space, or a scheme alone ("Bearer").
var ErrNoCredential = errors.New("auth: no credential in the authorization header")

// Credentials is an Authorization header value as ParseAuthorization reads it.
type Credentials struct {
	// Scheme is the first word as sent ("Bearer", "bearer", "Basic"), or
	// empty when the header holds a credential alone.
	Scheme string
	// Credential is the word after the scheme, or the header's only word.
	Credential string
}

// Bearer reports whether the scheme is Bearer, in any case.
func (c Credentials) Bearer() bool { return strings.EqualFold(c.Scheme, "Bearer") }

// ParseAuthorization reads an Authorization header value. It is the one
// reading of the header: the authorizer (user access tokens) and the usage
// endpoint (sk- keys) both take their credential from it, so a header
// means the same to both.
//
//   - Spaces and tabs around the value are ignored.
//   - Words are separated by one or more spaces or tabs: "Bearer\tX" and
//     "Bearer  X" are "Bearer X".
//   - Two words are a scheme and a credential; the scheme is compared
//     without regard to case by Bearer.
//   - One word is a credential without a scheme, except "Bearer" (any
//     case) alone, which carries none.
//   - Nothing, or a scheme alone, is ErrNoCredential.
//   - More than two words, or any byte other than visible ASCII, space and
//     tab (a line break, a control character, anything beyond ASCII), is
//     ErrMalformed: schemes and the credentials used here are ASCII.
func ParseAuthorization(header string) (Credentials, error) {
	for i := 0; i < len(header); i++ {
		if c := header[i]; c != ' ' && c != '\t' && (c < 0x21 || c > 0x7e) {
			return Credentials{}, ErrMalformed
		}
	}
	words := strings.FieldsFunc(header, func(r rune) bool { return r == ' ' || r == '\t' })
	switch len(words) {
	case 0:
		return Credentials{}, ErrNoCredential
	case 1:
		if strings.EqualFold(words[0], "Bearer") {
			return Credentials{}, ErrNoCredential
		}
		return Credentials{Credential: words[0]}, nil
	case 2:
		return Credentials{Scheme: words[0], Credential: words[1]}, nil
	}
	return Credentials{}, ErrMalformed
}

// Legacy access tokens: the users.access_token values of new-api and
// one-api, imported by cmd/admin import -access-tokens. one-api's are 32
// hex digits, new-api's base64-like; both send them with or without
// "Bearer ".
const (
	legacyMinLen = 16
	legacyMaxLen = 64
)

// LegacyWellFormed reports whether tok has the shape of a legacy access
// token: 16 to 64 characters of [A-Za-z0-9+/=]. It never has the shape of
// one of ours, which start with "at-".
func LegacyWellFormed(tok string) bool {
	if len(tok) < legacyMinLen || len(tok) > legacyMaxLen {
		return false
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '='
		if !ok {
			return false
		}
	}
	return true
}

// NormalizeLegacy trims the spaces around a legacy access token as the
// import stores it, and reports whether what remains is well formed.
func NormalizeLegacy(tok string) (string, bool) {
	tok = strings.Trim(tok, " \t")
	return tok, LegacyWellFormed(tok)
}

// AccessToken returns the user access token c carries, or ErrMalformed
// when it carries none: ours ("at-..."), after the Bearer scheme; and, when
// acceptLegacy is set (template parameter AcceptLegacyAccessTokens), a
// legacy access token after the Bearer scheme or alone. Either way no
// storage call is needed to refuse the rest.
func (c Credentials) AccessToken(acceptLegacy bool) (string, error) {
	switch {
	case c.Bearer() && WellFormed(c.Credential):
		return c.Credential, nil
	case acceptLegacy && (c.Bearer() || c.Scheme == "") && LegacyWellFormed(c.Credential):
		return c.Credential, nil
	}
	return "", ErrMalformed
}
