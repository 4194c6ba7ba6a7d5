package kmsseal

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/llmgw/token-service/internal/seal"
	"github.com/llmgw/token-service/internal/token"
)

// versionKMS marks a value sealed by KMS (envelope encryption); AESGCM's
// values start with versionAESGCM, so the two never open each other's.
const versionKMS = 2

// KMSAPI is the part of *kms.Client the KMS sealer uses.
type KMSAPI interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

var _ KMSAPI = (*kms.Client)(nil)

// kmsContext is the encryption context of every data key: KMS binds the
// wrapped key to it (and logs it in CloudTrail), so a data key wrapped for
// another purpose does not unwrap here.
var kmsContext = map[string]string{"purpose": "llmgw-token-key-sealing"}

// maxDataKeys bounds the unwrapped data keys a KMS sealer keeps.
const maxDataKeys = 1024

// KMS seals with envelope encryption under a customer-managed KMS key: one
// AES-256 data key per container, made by GenerateDataKey on the first
// Seal, seals every key with AES-256-GCM (the item's pk and sk as
// additional data); the data key, wrapped by KMS, is stored in each sealed
// value. Open unwraps a wrapped data key with one KMS Decrypt and keeps it,
// so a container calls KMS once per distinct data key, not per token.
//
// Why envelope encryption rather than KMS Encrypt/Decrypt per key: a batch
// reveal opens up to 100 keys and a create seals up to 49, which would be
// 100 or 49 KMS calls (each a network round trip of a few ms, billed per
// 10,000 and subject to the account's shared KMS request quota) inside one
// HTTP request; with a data key per container they are at most one. The
// key material that matters still never leaves KMS: without kms:Decrypt on
// the key a stolen table (or backup) opens nothing, access is logged by
// CloudTrail per data key, and revoking the key policy revokes every
// sealed value. The plaintext data key lives only in a function's memory,
// and only in the four functions allowed to use the key.
//
// Sealed format: version byte 2, the wrapped data key's length (2 bytes,
// big endian), the wrapped data key, the 12-byte nonce, then the GCM
// ciphertext with its tag.
type KMS struct {
	api   KMSAPI
	keyID string

	mu     sync.Mutex
	sealer *dataKey            // this container's data key, made on first Seal
	opened map[string]*dataKey // wrapped data key -> its AEAD
}

type dataKey struct {
	wrapped []byte
	aead    cipher.AEAD
}

var _ token.Sealer = (*KMS)(nil)

// NewKMS returns a sealer using the KMS key keyID (an id, ARN or alias).
// It calls KMS only when it first seals or opens.
func NewKMS(api KMSAPI, keyID string) (*KMS, error) {
	if api == nil {
		return nil, errors.New("seal: no KMS client")
	}
	if keyID == "" {
		return nil, errors.New("seal: no KMS key id")
	}
	return &KMS{api: api, keyID: keyID, opened: map[string]*dataKey{}}, nil
}

// Seal encrypts plaintext bound to aad with the container's data key.
func (s *KMS) Seal(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	dk, err := s.dataKey(ctx)
	if err != nil {
		return nil, err
	}
	n := dk.aead.NonceSize()
	head := 1 + 2 + len(dk.wrapped)
	out := make([]byte, head+n, head+n+len(plaintext)+dk.aead.Overhead())
	out[0] = versionKMS
	binary.BigEndian.PutUint16(out[1:3], uint16(len(dk.wrapped)))
	copy(out[3:], dk.wrapped)
	nonce := out[head : head+n]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return dk.aead.Seal(out, nonce, plaintext, aad), nil
}

// Open decrypts a value sealed by a KMS sealer of the same key with aad.
// seal.ErrOpen for a value that is not one or does not open; a KMS failure
// (outage, no permission) is another error, not seal.ErrOpen.
func (s *KMS) Open(ctx context.Context, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < 3 || sealed[0] != versionKMS {
		return nil, seal.ErrOpen
	}
	wl := int(binary.BigEndian.Uint16(sealed[1:3]))
	if wl == 0 || len(sealed) < 3+wl {
		return nil, seal.ErrOpen
	}
	wrapped, rest := sealed[3:3+wl], sealed[3+wl:]
	dk, err := s.unwrap(ctx, wrapped)
	if err != nil {
		return nil, err
	}
	n := dk.aead.NonceSize()
	if len(rest) < n+dk.aead.Overhead() {
		return nil, seal.ErrOpen
	}
	pt, err := dk.aead.Open(nil, rest[:n], rest[n:], aad)
	if err != nil {
		return nil, seal.ErrOpen
	}
	return pt, nil
}

// dataKey returns the container's data key, generating it on first use. A
// failed GenerateDataKey is not cached: the next Seal tries again.
func (s *KMS) dataKey(ctx context.Context) (*dataKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sealer != nil {
		return s.sealer, nil
	}
	out, err := s.api.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(s.keyID),
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: kmsContext,
	})
	if err != nil {
		return nil, fmt.Errorf("seal: generate data key: %w", err)
	}
	if len(out.CiphertextBlob) == 0 || len(out.CiphertextBlob) > 0xffff {
		return nil, errors.New("seal: generate data key: bad wrapped key")
	}
	dk, err := newDataKey(out.Plaintext, out.CiphertextBlob)
	if err != nil {
		return nil, err
	}
	s.sealer = dk
	s.remember(dk)
	return dk, nil
}

// unwrap returns the data key of a wrapped one, from the cache or with one
// KMS Decrypt.
func (s *KMS) unwrap(ctx context.Context, wrapped []byte) (*dataKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if dk, ok := s.opened[string(wrapped)]; ok {
		return dk, nil
	}
	out, err := s.api.Decrypt(ctx, &kms.DecryptInput{
		CiphertextBlob:    wrapped,
		KeyId:             aws.String(s.keyID),
		EncryptionContext: kmsContext,
	})
	if err != nil {
		var invalid *types.InvalidCiphertextException
		if errors.As(err, &invalid) {
			return nil, seal.ErrOpen
		}
		return nil, fmt.Errorf("seal: decrypt data key: %w", err)
	}
	dk, err := newDataKey(out.Plaintext, wrapped)
	if err != nil {
		return nil, err
	}
	s.remember(dk)
	return dk, nil
}

// remember caches dk (s.mu held), starting over when the cache is full.
func (s *KMS) remember(dk *dataKey) {
	if len(s.opened) >= maxDataKeys {
		clear(s.opened)
	}
	s.opened[string(dk.wrapped)] = dk
}

// newDataKey builds the AEAD of a 32-byte plaintext data key and wipes the
// plaintext.
func newDataKey(plaintext, wrapped []byte) (*dataKey, error) {
	defer clear(plaintext)
	aead, err := seal.NewAEAD(plaintext)
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	return &dataKey{wrapped: append([]byte(nil), wrapped...), aead: aead}, nil
}

// New returns the KMS sealer of keyID with a KMS client from cfg: the
// app.Options.KMS of the functions that seal or open keys.
func New(cfg aws.Config, keyID string) (token.Sealer, error) {
	return NewKMS(kms.NewFromConfig(cfg), keyID)
}
