package dynamo_test

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/ddbcount"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
)

// countedStore is a second store on e's table whose requests are counted.
func countedStore(t *testing.T, e env) (parts, *ddbcount.Counter) {
	t.Helper()
	counter := &ddbcount.Counter{}
	return newParts(t, dynamodb.New(e.client.Options(), counter.Option), e.table, e.sealer, 0), counter
}

func TestRevealRequestsAndLimit(t *testing.T) {
	e := newEnv(t, 1000)
	ctx := context.Background()
	toks := mustCreate(t, e.tokens, "u1", mustTokens(t, "u1", spec("r", 3)))
	other := mustCreate(t, e.tokens, "u2", mustTokens(t, "u2", spec("o", 1)))[0]
	store, counter := countedStore(t, e)
	const limit = 4

	counter.Reset()
	got, err := store.keys.RevealKey(ctx, "u1", toks[0].ID, limit, now)
	if err != nil || got.Key != toks[0].Key {
		t.Fatalf("RevealKey = %q, %v; want the created key", got.Key, err)
	}
	if c, want := counter.Counts(), map[string]int{"UpdateItem": 1, "GetItem": 1}; !maps.Equal(c, want) {
		t.Errorf("single reveal requests = %v, want %v", c, want)
	}

	counter.Reset()
	batch, err := store.keys.RevealKeys(ctx, "u1", []int64{toks[2].ID, 999, toks[1].ID, toks[2].ID}, limit, now)
	if err != nil {
		t.Fatal(err)
	}
	if c, want := counter.Counts(), map[string]int{"UpdateItem": 1, "BatchGetItem": 1}; !maps.Equal(c, want) {
		t.Errorf("batch reveal requests = %v, want %v", c, want)
	}
	if len(batch) != 2 || batch[0].Key != toks[2].Key || batch[1].Key != toks[1].Key {
		t.Errorf("batch = %+v, want tokens %d and %d with their keys (others left out)", batch, toks[2].ID, toks[1].ID)
	}

	// A rotation: one read and one transaction.
	counter.Reset()
	k, _ := token.NewKey()
	if _, err := store.keys.Rotate(ctx, "u2", other.ID, k, time.Minute, now); err != nil {
		t.Fatal(err)
	}
	if c, want := counter.Counts(), map[string]int{"GetItem": 1, "TransactWriteItems": 1}; !maps.Equal(c, want) {
		t.Errorf("rotate requests = %v, want %v", c, want)
	}
	other.Key = k

	// Ids are per user: u1's token 3 is not u2's. Not found, but the
	// request counts (for u1 a missing id counts too).
	if _, err := store.keys.RevealKey(ctx, "u2", toks[2].ID, limit, now); token.ErrorCode(err) != token.ENotFound {
		t.Errorf("reveal of another user's token: %v, want not found", err)
	}
	if got, err := store.keys.RevealKey(ctx, "u2", other.ID, limit, now); err != nil || got.Key != other.Key {
		t.Errorf("u2's own reveal = %q, %v", got.Key, err)
	}
	if _, err := store.keys.RevealKey(ctx, "u1", 999, limit, now); token.ErrorCode(err) != token.ENotFound {
		t.Errorf("reveal of an unknown id: %v, want not found", err)
	}
	// The 4th request of the minute passes, the 5th is refused, from any
	// container (e.keys never saw the window).
	if _, err := e.keys.RevealKey(ctx, "u1", toks[0].ID, limit, now.Add(10*time.Second)); err != nil {
		t.Fatalf("4th reveal: %v", err)
	}
	_, err = store.keys.RevealKeys(ctx, "u1", ids(toks), limit, now.Add(20*time.Second))
	var rl *token.RateLimitError
	if !errors.As(err, &rl) || token.ErrorCode(err) != token.ERateLimited || rl.RetryAfter != 40 {
		t.Fatalf("5th reveal: %v, want rate limited with retry after 40 s", err)
	}
	// The next minute opens a new window.
	if _, err := store.keys.RevealKey(ctx, "u1", toks[0].ID, limit, now.Add(time.Minute)); err != nil {
		t.Errorf("reveal in the next minute: %v", err)
	}
	// A user without tokens reveals nothing and gets no meta item.
	if _, err := store.keys.RevealKey(ctx, "nobody", 1, limit, now); token.ErrorCode(err) != token.ENotFound {
		t.Errorf("reveal by a user without tokens: %v, want not found", err)
	}
	if got, err := store.keys.RevealKeys(ctx, "nobody", []int64{1}, limit, now); err != nil || len(got) != 0 {
		t.Errorf("batch reveal by a user without tokens = %v, %v; want empty", got, err)
	}
}

func TestRotateKeepsTheTokenAndCleansUp(t *testing.T) {
	e := newEnv(t, 1000)
	ctx := context.Background()
	orig := mustCreate(t, e.tokens, "u1", mustTokens(t, "u1", spec("rot", 1)))[0]
	mustCreate(t, e.tokens, "u2", mustTokens(t, "u2", spec("other", 1)))
	lookupsBefore := countLookupItems(t, e)

	key1, _ := token.NewKey()
	got, err := e.keys.Rotate(ctx, "u1", orig.ID, key1, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	want := orig
	want.Key, want.KeyHash, want.KeyMask = key1, token.HashKey(key1), token.MaskKey(key1)
	want.PrevKeyHash, want.PrevKeyExpires = orig.KeyHash, now.Add(time.Hour).Unix()
	if !equalTokens(got, want) {
		t.Errorf("Rotate =\n%+v, want\n%+v", got, want)
	}
	if read, err := e.tokens.Get(ctx, "u1", orig.ID); err != nil || !equalTokens(read, masked(want)) {
		t.Errorf("Get after rotate =\n%+v, %v; want\n%+v", read, err, masked(want))
	}
	if n := countLookupItems(t, e); n != lookupsBefore+1 {
		t.Errorf("lookup items after a rotation with grace = %d, want %d (old one kept until it expires)", n, lookupsBefore+1)
	}
	revealed, err := e.keys.RevealKey(ctx, "u1", orig.ID, 0, now)
	if err != nil || revealed.Key != key1 {
		t.Errorf("reveal after rotate = %q, %v; want the new key", revealed.Key, err)
	}

	// Rotating again within the grace: the first key's lookup goes, only
	// the latest replaced key is kept.
	key2, _ := token.NewKey()
	if _, err := e.keys.Rotate(ctx, "u1", orig.ID, key2, 0, now); err != nil {
		t.Fatal(err)
	}
	if n := countLookupItems(t, e); n != lookupsBefore {
		t.Errorf("lookup items after a rotation without grace = %d, want %d", n, lookupsBefore)
	}
	if _, _, err := e.ledger.LookupKey(ctx, token.HashKey(key1), now); token.ErrorCode(err) != token.ENotFound {
		t.Errorf("lookup of a key rotated out without grace: %v, want not found", err)
	}
	key3, _ := token.NewKey()
	if _, err := e.keys.Rotate(ctx, "u2", orig.ID+1, key3, 0, now); token.ErrorCode(err) != token.ENotFound {
		t.Errorf("rotating another user's token: %v, want not found", err)
	}
}

func TestDeleteAfterRotationRemovesBothLookups(t *testing.T) {
	for _, batch := range []bool{false, true} {
		e := newEnv(t, 1000)
		ctx := context.Background()
		toks := mustCreate(t, e.tokens, "u1", mustTokens(t, "u1", spec("d", 2)))
		for _, tok := range toks {
			k, _ := token.NewKey()
			if _, err := e.keys.Rotate(ctx, "u1", tok.ID, k, time.Hour, now); err != nil {
				t.Fatal(err)
			}
		}
		if n := countLookupItems(t, e); n != 4 {
			t.Fatalf("lookup items after two rotations with grace = %d, want 4", n)
		}
		if batch {
			if n, err := e.tokens.DeleteMany(ctx, "u1", ids(toks)); err != nil || n != 2 {
				t.Fatalf("DeleteMany = %d, %v", n, err)
			}
		} else {
			for _, tok := range toks {
				if err := e.tokens.Delete(ctx, "u1", tok.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		if n := countLookupItems(t, e); n != 0 {
			t.Errorf("batch %v: lookup items after the deletes = %d, want 0", batch, n)
		}
	}
}

func TestExpiredLookupIsMissing(t *testing.T) {
	e := newEnv(t, 1000)
	ctx := context.Background()
	tok := mustCreate(t, e.tokens, "u1", mustTokens(t, "u1", spec("x", 1)))[0]
	k, _ := token.NewKey()
	// A grace window in 2001: the lookup item is live or expired by the
	// caller's clock, whatever the real time, and an expired one stays
	// stored until TTL deletes it.
	past := time.Unix(1_000_000_000, 0)
	if _, err := e.keys.Rotate(ctx, "u1", tok.ID, k, time.Hour, past); err != nil {
		t.Fatal(err)
	}
	if n := countLookupItems(t, e); n != 2 {
		t.Fatalf("lookup items = %d, want 2 (the expired one still stored)", n)
	}
	for _, tt := range []struct {
		name string
		at   time.Time
		want bool
	}{
		{"inside the grace", past.Add(59 * time.Minute), true},
		{"at the grace's end", past.Add(time.Hour), false},
		{"long after", past.Add(30 * 24 * time.Hour), false},
	} {
		u, id, err := e.ledger.LookupKey(ctx, tok.KeyHash, tt.at)
		if got := err == nil && u == "u1" && id == tok.ID; got != tt.want {
			t.Errorf("%s: LookupKey of the old key = %s %d %v, want found %v", tt.name, u, id, err, tt.want)
		}
		if !tt.want && token.ErrorCode(err) != token.ENotFound {
			t.Errorf("%s: LookupKey of an expired lookup item: %v, want not found", tt.name, err)
		}
		if u, id, err := e.ledger.LookupKey(ctx, token.HashKey(k), tt.at); err != nil || u != "u1" || id != tok.ID {
			t.Errorf("%s: LookupKey of the new key = %s %d %v", tt.name, u, id, err)
		}
	}
	for _, av := range scanAll(t, e) {
		if pk := av[dynamo.PartitionKey].(*types.AttributeValueMemberS).Value; pk == "KEY#"+tok.KeyHash {
			if _, ok := av["expires_at"]; !ok {
				t.Error("the old lookup item has no expires_at (TTL attribute)")
			}
		}
	}
}

// equalTokens compares tokens field by field (they hold slices).
func equalTokens(a, b token.Token) bool {
	return a.ID == b.ID && a.UserID == b.UserID && a.Name == b.Name && a.Key == b.Key &&
		a.KeyMask == b.KeyMask && a.KeyHash == b.KeyHash && a.PrevKeyHash == b.PrevKeyHash &&
		a.PrevKeyExpires == b.PrevKeyExpires && a.Status == b.Status && a.RemainQuota == b.RemainQuota &&
		a.UsedQuota == b.UsedQuota && a.UnlimitedQuota == b.UnlimitedQuota &&
		a.ModelLimitsEnabled == b.ModelLimitsEnabled && slicesEqual(a.ModelLimits, b.ModelLimits) &&
		slicesEqual(a.AllowIPs, b.AllowIPs) && a.Group == b.Group && a.ExpiredTime == b.ExpiredTime &&
		a.RPMLimit == b.RPMLimit && a.CreatedTime == b.CreatedTime && a.AccessedTime == b.AccessedTime
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
