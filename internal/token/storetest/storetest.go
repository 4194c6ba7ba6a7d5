// Package storetest is the contract of the token stores: one suite of
// table-driven cases on the store interfaces (token.Store, token.KeyStore,
// the key lookup, auth.Store and the user flag) that every implementation
// runs, so the DynamoDB store and the in-memory one the handler tests use
// cannot drift apart. A store package runs it from a test:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, limit int) storetest.Stores { ... })
//	}
//
// It is test support: no function may link it (tools/fence checks).
package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/internal/token"
)

// Stores is one store under test by the interfaces it serves, every field
// over the same fresh, empty storage.
type Stores struct {
	Tokens token.Store
	Keys   token.KeyStore
	Lookup KeyLookup
	Access auth.Store
	Users  UserFlags
	// Windows writes spend-window state behind Tokens (budgetCases).
	Windows WindowWriter
}

// KeyLookup maps a key hash to its token, as the usage endpoint and verify
// read it: token.ErrNotFound for an unknown key and for a rotated-out key
// whose grace has ended at now. GetWithUser then reads the token and its
// user's disabled flag together (token.ErrNotFound).
type KeyLookup interface {
	LookupKey(ctx context.Context, keyHash string, now time.Time) (userID string, tokenID int64, err error)
	GetWithUser(ctx context.Context, userID string, id int64) (t token.Token, userDisabled bool, err error)
}

// UserFlags sets what cmd/admin sets on a user: a disabled user's access
// tokens are refused (auth.ErrDisabled).
type UserFlags interface {
	SetUserDisabled(ctx context.Context, userID string, disabled bool) error
}

// NewStores returns Stores over fresh, empty storage whose per-user token
// limit is limit.
type NewStores func(t *testing.T, limit int) Stores

// testCase is one case of the contract, run on fresh stores.
type testCase struct {
	name string
	// limit is the stores' per-user token limit; 0 means defaultLimit.
	limit int
	run   func(t *testing.T, s Stores)
}

const defaultLimit = 1000

// Run runs every case of the contract as a subtest, each on fresh stores
// from newStores.
func Run(t *testing.T, newStores NewStores) {
	for _, c := range slices.Concat(tokenCases, keyCases, accessCases, limitCases, budgetCases) {
		t.Run(c.name, func(t *testing.T) {
			limit := c.limit
			if limit == 0 {
				limit = defaultLimit
			}
			c.run(t, newStores(t, limit))
		})
	}
}

// now is the contract's clock, at the start of a minute.
var now = time.Unix(1_800_000_000, 0)

// spec is a valid create input with the given name and count.
func spec(name string, count int) token.Spec {
	return token.Spec{
		Name:               name,
		Count:              count,
		ExpiredTime:        token.NeverExpires,
		RemainQuota:        1000,
		ModelLimitsEnabled: true,
		ModelLimits:        []string{"gpt-4o", "claude"},
		AllowIPs:           []string{"10.0.0.0/8"},
		Group:              "default",
		RPMLimit:           60,
	}
}

func mustTokens(t *testing.T, userID string, s token.Spec) []token.Token {
	t.Helper()
	toks, err := s.Tokens(userID, now)
	if err != nil {
		t.Fatalf("Tokens: %v", err)
	}
	return toks
}

func mustCreate(t *testing.T, s token.Store, userID string, toks []token.Token) []token.Token {
	t.Helper()
	got, err := s.Create(context.Background(), userID, toks)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return got
}

// create makes count tokens of spec(name, count) for userID.
func create(t *testing.T, s Stores, userID, name string, count int) []token.Token {
	t.Helper()
	return mustCreate(t, s.Tokens, userID, mustTokens(t, userID, spec(name, count)))
}

func mustKey(t *testing.T) string {
	t.Helper()
	k, err := token.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// masked is t as a read returns it: without the full key.
func masked(t token.Token) token.Token {
	t.Key = ""
	return t
}

func ids(toks []token.Token) []int64 {
	out := make([]int64, len(toks))
	for i, t := range toks {
		out[i] = t.ID
	}
	return out
}

// seq returns from, from+step, ... count values.
func seq(from, step int64, count int) []int64 {
	out := make([]int64, count)
	for i := range out {
		out[i] = from + int64(i)*step
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := token.ErrorCode(err); got != code {
		t.Fatalf("%s: error code %q (%v), want %q", what, got, err, code)
	}
}

// total is the user's token count as List reports it.
func total(t *testing.T, s Stores, userID string) int {
	t.Helper()
	p, err := s.Tokens.List(context.Background(), userID, 1, 1)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return p.Total
}

// wantLookup checks what LookupKey answers for key at: found (user and
// id) or not found.
func wantLookup(t *testing.T, s Stores, what, key string, at time.Time, userID string, id int64, found bool) {
	t.Helper()
	u, got, err := s.Lookup.LookupKey(context.Background(), token.HashKey(key), at)
	switch {
	case found && (err != nil || u != userID || got != id):
		t.Errorf("%s: LookupKey = %q %d %v, want %q %d", what, u, got, err, userID, id)
	case !found && token.ErrorCode(err) != token.ENotFound:
		t.Errorf("%s: LookupKey = %q %d %v, want not found", what, u, got, err)
	}
}
