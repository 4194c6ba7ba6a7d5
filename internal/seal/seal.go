// Package seal encrypts API keys at rest with AES-256-GCM. A sealed value is
// one version byte, the 12-byte nonce and the GCM ciphertext with its tag; the
// caller's additional data (the item's pk and sk) binds it to its item.
package seal

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/llmgw/token-service/internal/token"
)

const versionAESGCM = 1

// ErrOpen is returned for a ciphertext that does not open: corrupted, moved to
// another item, or sealed with another key.
var ErrOpen = errors.New("seal: cannot open sealed value")

// AESGCM seals with one AES-256 key.
type AESGCM struct{ aead cipher.AEAD }

var _ token.Sealer = (*AESGCM)(nil)

// NewAESGCM returns a sealer for a 32-byte key.
func NewAESGCM(key []byte) (*AESGCM, error) {
	aead, err := NewAEAD(key)
	if err != nil {
		return nil, err
	}
	return &AESGCM{aead: aead}, nil
}

// NewAEAD returns the AES-256-GCM cipher of a 32-byte key: the cipher of
// every sealer (AESGCM's key, and each of kmsseal's data keys).
func NewAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("seal: key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return aead, nil
}

// NewAESGCMFromBase64 decodes a standard base64 key and returns its sealer.
func NewAESGCMFromBase64(b64 string) (*AESGCM, error) {
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("seal: key is not valid base64")
	}
	return NewAESGCM(key)
}

// Seal encrypts plaintext bound to aad.
func (s *AESGCM) Seal(_ context.Context, plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	out[0] = versionAESGCM
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return s.aead.Seal(out, out[1:], plaintext, aad), nil
}

// Open decrypts a value sealed with the same key and aad.
func (s *AESGCM) Open(_ context.Context, sealed, aad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != versionAESGCM {
		return nil, ErrOpen
	}
	pt, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}
