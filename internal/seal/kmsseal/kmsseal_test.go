package kmsseal_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"maps"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/llmgw/token-service/internal/seal"
	"github.com/llmgw/token-service/internal/seal/kmsseal"
)

const testKeyID = "arn:aws:kms:us-east-1:123456789012:key/test"

// fakeKMS wraps data keys with its own AES-GCM master key, checks the key
// id and encryption context as KMS does, and counts its calls. down makes
// every call fail, as an outage or a missing permission does.
type fakeKMS struct {
	mu        sync.Mutex
	master    cipher.AEAD
	generates int
	decrypts  int
	down      bool
}

var errOutage = errors.New("kms: service unavailable")

func newFakeKMS(t *testing.T) *fakeKMS {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeKMS{master: aead}
}

func contextAAD(keyID string, ec map[string]string) []byte {
	b := []byte(keyID)
	for _, k := range []string{"purpose"} {
		b = append(b, 0)
		b = append(b, k+"="+ec[k]...)
	}
	return b
}

func (f *fakeKMS) GenerateDataKey(_ context.Context, in *kms.GenerateDataKeyInput, _ ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.generates++
	if f.down {
		return nil, errOutage
	}
	if in.KeySpec != types.DataKeySpecAes256 || in.KeyId == nil || len(in.EncryptionContext) == 0 {
		return nil, errors.New("fake kms: unexpected GenerateDataKey input")
	}
	plain := make([]byte, 32)
	nonce := make([]byte, f.master.NonceSize())
	_, _ = rand.Read(plain)
	_, _ = rand.Read(nonce)
	wrapped := f.master.Seal(append([]byte(nil), nonce...), nonce, plain, contextAAD(*in.KeyId, in.EncryptionContext))
	return &kms.GenerateDataKeyOutput{Plaintext: plain, CiphertextBlob: wrapped, KeyId: in.KeyId}, nil
}

func (f *fakeKMS) Decrypt(_ context.Context, in *kms.DecryptInput, _ ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.decrypts++
	if f.down {
		return nil, errOutage
	}
	n := f.master.NonceSize()
	if in.KeyId == nil || len(in.CiphertextBlob) < n {
		return nil, &types.InvalidCiphertextException{}
	}
	plain, err := f.master.Open(nil, in.CiphertextBlob[:n], in.CiphertextBlob[n:], contextAAD(*in.KeyId, in.EncryptionContext))
	if err != nil {
		return nil, &types.InvalidCiphertextException{}
	}
	return &kms.DecryptOutput{Plaintext: plain, KeyId: in.KeyId}, nil
}

func (f *fakeKMS) counts() (generates, decrypts int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.generates, f.decrypts
}

func newKMS(t *testing.T, f *fakeKMS) *kmsseal.KMS {
	t.Helper()
	s, err := kmsseal.NewKMS(f, testKeyID)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestKMSRoundTripAcrossContainers(t *testing.T) {
	ctx := context.Background()
	f := newFakeKMS(t)
	writer, reader := newKMS(t, f), newKMS(t, f) // two containers, one key
	aad := []byte("USER#1\x00TOKEN#0000000000000000001")
	plain := []byte("sk-secret-key")
	sealed, err := writer.Seal(ctx, plain, aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, plain) {
		t.Fatal("sealed value contains the plaintext")
	}
	for name, s := range map[string]*kmsseal.KMS{"the sealing container": writer, "another container": reader} {
		got, err := s.Open(ctx, sealed, aad)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%s: Open = %q, %v; want %q", name, got, err, plain)
		}
	}
}

func TestKMSRefusesWhatItCannotOpen(t *testing.T) {
	ctx := context.Background()
	f := newFakeKMS(t)
	s := newKMS(t, f)
	aad := []byte("USER#1\x00TOKEN#1")
	sealed, err := s.Seal(ctx, []byte("sk-secret"), aad)
	if err != nil {
		t.Fatal(err)
	}
	aesSealed, err := newSealer(t).Seal(ctx, []byte("sk-secret"), aad)
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), sealed...)
	flipped[len(flipped)-1] ^= 1
	badWrap := append([]byte(nil), sealed...)
	badWrap[4] ^= 1 // inside the wrapped data key

	tests := []struct {
		name   string
		sealed []byte
		aad    []byte
	}{
		{"wrong aad (moved to another item)", sealed, []byte("USER#2\x00TOKEN#1")},
		{"tampered ciphertext", flipped, aad},
		{"tampered wrapped data key", badWrap, aad},
		{"an AES-GCM (local) value", aesSealed, aad},
		{"truncated", sealed[:10], aad},
		{"empty", nil, aad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := newKMS(t, f).Open(ctx, tt.sealed, tt.aad); !errors.Is(err, seal.ErrOpen) {
				t.Errorf("Open = %q, %v; want ErrOpen", got, err)
			}
		})
	}
	// And the local sealer refuses a KMS value: the versions differ.
	if _, err := newSealer(t).Open(ctx, sealed, aad); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("AES-GCM Open of a KMS value = %v, want ErrOpen", err)
	}
}

func TestKMSOutageIsAnError(t *testing.T) {
	ctx := context.Background()
	f := newFakeKMS(t)
	sealed, err := newKMS(t, f).Seal(ctx, []byte("sk-secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	f.down = true
	s := newKMS(t, f)
	if _, err := s.Seal(ctx, []byte("sk-other"), nil); !errors.Is(err, errOutage) {
		t.Errorf("Seal during an outage = %v, want the KMS error", err)
	}
	_, err = s.Open(ctx, sealed, nil)
	if !errors.Is(err, errOutage) || errors.Is(err, seal.ErrOpen) {
		t.Errorf("Open during an outage = %v, want the KMS error (not ErrOpen)", err)
	}
	// A failure is not cached: once KMS is back, the same sealer works.
	f.down = false
	if _, err := s.Seal(ctx, []byte("sk-other"), nil); err != nil {
		t.Errorf("Seal after the outage: %v", err)
	}
	if _, err := s.Open(ctx, sealed, nil); err != nil {
		t.Errorf("Open after the outage: %v", err)
	}
}

func TestKMSCallsAreCached(t *testing.T) {
	ctx := context.Background()
	f := newFakeKMS(t)
	writer := newKMS(t, f)
	const n = 50
	sealed := make([][]byte, n)
	for i := range sealed {
		var err error
		if sealed[i], err = writer.Seal(ctx, []byte{byte(i)}, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if g, d := f.counts(); g != 1 || d != 0 {
		t.Fatalf("%d seals: %d GenerateDataKey, %d Decrypt; want 1, 0", n, g, d)
	}
	// The sealing container knows its own data key: no Decrypt.
	if _, err := writer.Open(ctx, sealed[0], []byte{0}); err != nil {
		t.Fatal(err)
	}
	if _, d := f.counts(); d != 0 {
		t.Errorf("open in the sealing container: %d Decrypt, want 0", d)
	}
	// Another container unwraps the one data key once for all its opens,
	// even concurrent ones.
	reader := newKMS(t, f)
	var wg sync.WaitGroup
	opened := make([][]byte, n)
	for i := range sealed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opened[i], _ = reader.Open(ctx, sealed[i], []byte{byte(i)})
		}()
	}
	wg.Wait()
	for i := range opened {
		if !bytes.Equal(opened[i], []byte{byte(i)}) {
			t.Fatalf("open %d = %v", i, opened[i])
		}
	}
	if g, d := f.counts(); g != 1 || d != 1 {
		t.Errorf("%d opens of one wrapped key: %d GenerateDataKey, %d Decrypt; want 1, 1", n, g, d)
	}
	// A second writer (another data key): one more Decrypt for its values.
	other, err := newKMS(t, f).Seal(ctx, []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := reader.Open(ctx, other, nil); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int{}
	got["generates"], got["decrypts"] = f.counts()
	if want := map[string]int{"generates": 2, "decrypts": 2}; !maps.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
}

func TestNewKMSNeedsClientAndKey(t *testing.T) {
	if _, err := kmsseal.NewKMS(nil, testKeyID); err == nil {
		t.Error("NewKMS(nil client) succeeded")
	}
	if _, err := kmsseal.NewKMS(newFakeKMS(t), ""); err == nil {
		t.Error("NewKMS(no key id) succeeded")
	}
}

// newSealer is a local AES-256-GCM sealer with a fresh key.
func newSealer(t *testing.T) *seal.AESGCM {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	s, err := seal.NewAESGCM(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
