package seal_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/llmgw/token-service/internal/seal"
)

func newSealer(t *testing.T) *seal.AESGCM {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	s, err := seal.NewAESGCMFromBase64(base64.StdEncoding.EncodeToString(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpen(t *testing.T) {
	ctx := context.Background()
	s := newSealer(t)
	plain := []byte("sk-secret")
	aad := []byte("USER#1\x00TOKEN#0001")
	sealed, err := s.Seal(ctx, plain, aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, plain) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := s.Open(ctx, sealed, aad)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	again, _ := s.Seal(ctx, plain, aad)
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of one value are equal: the nonce is not fresh")
	}

	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	tests := map[string]struct {
		sealer *seal.AESGCM
		value  []byte
		aad    []byte
	}{
		"moved to another item": {s, sealed, []byte("USER#2\x00TOKEN#0001")},
		"tampered":              {s, tampered, aad},
		"other key":             {newSealer(t), sealed, aad},
		"truncated":             {s, sealed[:10], aad},
		"empty":                 {s, nil, aad},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := tt.sealer.Open(ctx, tt.value, tt.aad); !errors.Is(err, seal.ErrOpen) {
				t.Fatalf("Open err = %v, want ErrOpen", err)
			}
		})
	}
}

func TestNewAESGCMRefusesBadKeys(t *testing.T) {
	for name, b64 := range map[string]string{
		"not base64": "!!!",
		"16 bytes":   base64.StdEncoding.EncodeToString(make([]byte, 16)),
		"empty":      "",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := seal.NewAESGCMFromBase64(b64); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
