package memstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/seal"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/memstore"
	"github.com/llmgw/token-service/internal/token/storetest"
)

// MustNew returns an empty store with the per-user token limit limit.
func MustNew(t *testing.T, limit int) *memstore.Store {
	t.Helper()
	s, err := memstore.New(memstore.Config{MaxTokensPerUser: limit})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestContract holds the in-memory store to the contract the DynamoDB
// store passes too (internal/token/dynamo's TestContract).
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, limit int) storetest.Stores {
		s := MustNew(t, limit)
		return storetest.Stores{Tokens: s, Keys: s, Lookup: s, Access: s, Users: s,
			Windows: func(t *testing.T, userID string, id int64, w map[token.Period]token.BudgetWindow) {
				t.Helper()
				if err := s.Edit(userID, id, func(tok *token.Token) { tok.Windows = w }); err != nil {
					t.Fatal(err)
				}
			}}
	})
}

func TestNew(t *testing.T) {
	sealer, err := seal.NewAESGCM(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     memstore.Config
		wantErr bool
	}{
		{"default limit", memstore.Config{}, false},
		{"negative limit", memstore.Config{MaxTokensPerUser: -1}, true},
		{"limit, random sealing key", memstore.Config{MaxTokensPerUser: 1}, false},
		{"limit and sealer", memstore.Config{MaxTokensPerUser: 1, Sealer: sealer}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := memstore.New(tt.cfg)
			if got := err != nil; got != tt.wantErr {
				t.Fatalf("New error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && s == nil {
				t.Fatal("New returned a nil store")
			}
		})
	}
}

// TestKeysAreSealed: the sealer sees each key with its token's binding,
// and a reveal opens what it sealed.
func TestKeysAreSealed(t *testing.T) {
	rec := &recordingSealer{}
	s, err := memstore.New(memstore.Config{MaxTokensPerUser: 10, Sealer: rec})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	toks, err := token.Spec{Name: "k", Count: 2, ExpiredTime: token.NeverExpires}.Tokens("u", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	created, err := s.Create(ctx, "u", toks)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(rec.aads), 2; got != want {
		t.Fatalf("%d keys sealed, want %d", got, want)
	}
	if rec.aads[0] == rec.aads[1] {
		t.Errorf("two tokens sealed with the same binding %q", rec.aads[0])
	}
	got, err := s.RevealKey(ctx, "u", created[1].ID, 0, time.Now())
	if err != nil || got.Key != created[1].Key {
		t.Errorf("RevealKey = %q, %v; want the created key", got.Key, err)
	}
}

// recordingSealer "seals" by prefixing the binding, and records it.
type recordingSealer struct{ aads []string }

func (r *recordingSealer) Seal(_ context.Context, plaintext, aad []byte) ([]byte, error) {
	r.aads = append(r.aads, string(aad))
	return append(append([]byte{}, aad...), plaintext...), nil
}

func (r *recordingSealer) Open(_ context.Context, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < len(aad) || string(sealed[:len(aad)]) != string(aad) {
		return nil, seal.ErrOpen
	}
	return sealed[len(aad):], nil
}

func TestEdit(t *testing.T) {
	s := MustNew(t, 10)
	ctx := context.Background()
	toks, err := token.Spec{Name: "e", Count: 1, ExpiredTime: token.NeverExpires, RemainQuota: 1000}.Tokens("u", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	created, err := s.Create(ctx, "u", toks)
	if err != nil {
		t.Fatal(err)
	}
	tok := created[0]
	other, err := token.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	err = s.Edit("u", tok.ID, func(t *token.Token) {
		t.UsedQuota, t.RemainQuota = 300, 700
		t.KeyHash = token.HashKey(other)
		t.ID, t.UserID = 99, "someone-else" // ignored: the token stays where it is
	})
	if err != nil {
		t.Fatalf("Edit: %v", err)
	}
	got, err := s.Get(ctx, "u", tok.ID)
	if err != nil || got.UsedQuota != 300 || got.RemainQuota != 700 || got.KeyHash != token.HashKey(other) {
		t.Errorf("Get after Edit = %+v, %v; want used 300, remain 700, the other key's hash", got, err)
	}
	// The lookup still names the token, as a direct write would leave it.
	if u, id, err := s.LookupKey(ctx, tok.KeyHash, time.Now()); err != nil || u != "u" || id != tok.ID {
		t.Errorf("LookupKey of the created key = %q %d %v, want u %d", u, id, err, tok.ID)
	}
	if err := s.Edit("u", 42, func(*token.Token) {}); token.ErrorCode(err) != token.ENotFound {
		t.Errorf("Edit of an unknown id: %v, want not found", err)
	}
}

// TestDefaultLimit: a store configured without a limit has the domain's.
func TestDefaultLimit(t *testing.T) {
	s := MustNew(t, 0)
	ctx := context.Background()
	for n := 0; n < token.DefaultMaxTokensPerUser; {
		count := min(token.MaxCount, token.DefaultMaxTokensPerUser-n)
		toks, err := token.Spec{Name: "t", Count: count, ExpiredTime: token.NeverExpires}.Tokens("u", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, "u", toks); err != nil {
			t.Fatalf("Create after %d tokens: %v", n, err)
		}
		n += count
	}
	toks, err := token.Spec{Name: "one-more", Count: 1, ExpiredTime: token.NeverExpires}.Tokens("u", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "u", toks); token.ErrorCode(err) != token.ETokenLimit {
		t.Errorf("Create past %d tokens: %v, want %s", token.DefaultMaxTokensPerUser, err, token.ETokenLimit)
	}
}
