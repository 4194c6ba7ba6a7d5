package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/token"
)

// keyCases hold token.KeyStore and the key lookup to their contract.
var keyCases = []testCase{
	{name: "reveal shows the full key whatever the status", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		toks := mustTokens(t, "u", spec("r", 3))
		toks[2].ExpiredTime, toks[2].RemainQuota = now.Add(-time.Hour).Unix(), 0
		created := mustCreate(t, s.Tokens, "u", toks)
		disabled, err := s.Tokens.Update(ctx, "u", created[1].ID, token.Patch{Status: ptr(token.StatusDisabled)}, now)
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		wants := []token.Token{created[0], created[1], created[2]}
		wants[1].Status = disabled.Status
		for _, want := range wants {
			got, err := s.Keys.RevealKey(ctx, "u", want.ID, 100, now)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("RevealKey(%d) = %+v, %v; want %+v", want.ID, got, err, want)
			}
		}
		_, err = s.Keys.RevealKey(ctx, "u", 999, 100, now)
		wantCode(t, "RevealKey of an unknown id", err, token.ENotFound)
		_, err = s.Keys.RevealKey(ctx, "u", 0, 100, now)
		wantCode(t, "RevealKey of id 0", err, token.EInvalidID)
	}},

	{name: "batch reveal keeps the order of ids and leaves out the others", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		toks := create(t, s, "u1", "r", 3)
		create(t, s, "u2", "o", 5)
		got, err := s.Keys.RevealKeys(ctx, "u1", []int64{toks[2].ID, 999, 5, toks[1].ID, toks[2].ID}, 100, now)
		if err != nil {
			t.Fatalf("RevealKeys: %v", err)
		}
		want := []token.Token{toks[2], toks[1]}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("RevealKeys = %v, want tokens %v with their keys (others left out)", ids(got), ids(want))
		}
		none, err := s.Keys.RevealKeys(ctx, "u1", []int64{999}, 100, now)
		if err != nil || none == nil || len(none) != 0 {
			t.Errorf("RevealKeys of an unknown id = %v, %v; want an empty list", none, err)
		}
		for _, bad := range []struct {
			name string
			ids  []int64
		}{
			{"empty", nil},
			{"zero id", []int64{1, 0}},
			{"too many", seq(1, 1, token.MaxBatchIDs+1)},
		} {
			_, err := s.Keys.RevealKeys(ctx, "u1", bad.ids, 100, now)
			wantCode(t, "RevealKeys "+bad.name, err, token.EInvalidRequest)
		}
	}},

	{name: "reveals are limited per user and clock minute", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		toks := create(t, s, "u1", "r", 3)
		other := create(t, s, "u2", "o", 1)[0]
		const limit = 4
		at := func(d time.Duration) time.Time { return now.Add(d) }
		reveal := func(userID string, id int64, limit int, when time.Time) error {
			_, err := s.Keys.RevealKey(ctx, userID, id, limit, when)
			return err
		}
		revealAll := func(userID string, limit int, when time.Time) error {
			_, err := s.Keys.RevealKeys(ctx, userID, ids(toks), limit, when)
			return err
		}
		tests := []struct {
			name string
			run  func() error
			code string
			// retryAfter is the RetryAfter of a refusal.
			retryAfter int64
		}{
			{"1st", func() error { return reveal("u1", toks[0].ID, limit, at(0)) }, "", 0},
			{"2nd, a batch", func() error { return revealAll("u1", limit, at(5*time.Second)) }, "", 0},
			{"3rd, of an unknown id, counts", func() error { return reveal("u1", 999, limit, at(5*time.Second)) }, token.ENotFound, 0},
			{"4th", func() error { return reveal("u1", toks[1].ID, limit, at(10*time.Second)) }, "", 0},
			{"5th, a batch, refused", func() error { return revealAll("u1", limit, at(20*time.Second)) }, token.ERateLimited, 40},
			{"6th, refused", func() error { return reveal("u1", toks[0].ID, limit, at(30*time.Second)) }, token.ERateLimited, 30},
			{"another user's own", func() error { return reveal("u2", other.ID, limit, at(30*time.Second)) }, "", 0},
			{"the next minute", func() error { return reveal("u1", toks[0].ID, limit, at(time.Minute)) }, "", 0},
			{"no limit counts nothing", func() error {
				for range 3 {
					if err := reveal("u1", toks[0].ID, 0, at(2*time.Minute)); err != nil {
						return err
					}
				}
				return revealAll("u1", 0, at(2*time.Minute))
			}, "", 0},
			{"limit 1 after uncounted reveals", func() error { return reveal("u1", toks[0].ID, 1, at(2*time.Minute+time.Second)) }, "", 0},
			{"limit 1, second", func() error { return reveal("u1", toks[0].ID, 1, at(2*time.Minute+2*time.Second)) }, token.ERateLimited, 58},
			// A clock a minute behind counts in the later window, never moving it back.
			{"a clock behind counts in the open window", func() error { return reveal("u1", toks[0].ID, 2, at(90*time.Second)) }, "", 0},
			{"a clock behind, window full", func() error { return reveal("u1", toks[0].ID, 2, at(90*time.Second)) }, token.ERateLimited, 30},
		}
		for _, tt := range tests {
			err := tt.run()
			if got := token.ErrorCode(err); got != tt.code {
				t.Fatalf("%s: error code %q (%v), want %q", tt.name, got, err, tt.code)
			}
			var rl *token.RateLimitError
			if tt.code == token.ERateLimited && (!errors.As(err, &rl) || rl.RetryAfter != tt.retryAfter) {
				t.Errorf("%s: %v, want a *RateLimitError with retry after %d s", tt.name, err, tt.retryAfter)
			}
		}
	}},

	{name: "reveal by a user without tokens", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		create(t, s, "somebody", "s", 1)
		for _, limit := range []int{0, 4} {
			_, err := s.Keys.RevealKey(ctx, "nobody", 1, limit, now)
			wantCode(t, fmt.Sprintf("RevealKey with limit %d", limit), err, token.ENotFound)
			got, err := s.Keys.RevealKeys(ctx, "nobody", []int64{1}, limit, now)
			if err != nil || got == nil || len(got) != 0 {
				t.Errorf("RevealKeys with limit %d = %v, %v; want an empty list", limit, got, err)
			}
		}
	}},

	{name: "rotate keeps the token and moves the key", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		orig := create(t, s, "u1", "rot", 1)[0]
		create(t, s, "u2", "other", 1)

		key1 := mustKey(t)
		got, err := s.Keys.Rotate(ctx, "u1", orig.ID, key1, time.Hour, now)
		if err != nil {
			t.Fatalf("Rotate: %v", err)
		}
		want := orig
		want.Key, want.KeyHash, want.KeyMask = key1, token.HashKey(key1), token.MaskKey(key1)
		want.PrevKeyHash, want.PrevKeyExpires = orig.KeyHash, now.Add(time.Hour).Unix()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Rotate =\n%+v, want\n%+v", got, want)
		}
		if read, err := s.Tokens.Get(ctx, "u1", orig.ID); err != nil || !reflect.DeepEqual(read, masked(want)) {
			t.Errorf("Get after Rotate =\n%+v, %v; want\n%+v", read, err, masked(want))
		}
		if revealed, err := s.Keys.RevealKey(ctx, "u1", orig.ID, 0, now); err != nil || revealed.Key != key1 {
			t.Errorf("RevealKey after Rotate = %q, %v; want the new key", revealed.Key, err)
		}
		for _, tt := range []struct {
			name  string
			key   string
			at    time.Time
			found bool
		}{
			{"new key", key1, now, true},
			{"new key much later", key1, now.Add(30 * 24 * time.Hour), true},
			{"old key at once", orig.Key, now, true},
			{"old key inside the grace", orig.Key, now.Add(59 * time.Minute), true},
			{"old key at the grace's end", orig.Key, now.Add(time.Hour), false},
			{"old key long after", orig.Key, now.Add(30 * 24 * time.Hour), false},
		} {
			wantLookup(t, s, tt.name, tt.key, tt.at, "u1", orig.ID, tt.found)
		}
		for _, tt := range []struct {
			name string
			key  string
			want []int64
		}{
			{"new key", key1, []int64{orig.ID}},
			{"old key", orig.Key, []int64{}},
		} {
			found, err := s.Tokens.Search(ctx, "u1", token.SearchQuery{Key: tt.key}, 100)
			if err != nil || !slices.Equal(ids(found), tt.want) {
				t.Errorf("Search by the %s = %v, %v; want %v", tt.name, ids(found), err, tt.want)
			}
		}

		// Rotating again without grace: every earlier key stops at once.
		key2 := mustKey(t)
		got, err = s.Keys.Rotate(ctx, "u1", orig.ID, key2, 0, now)
		if err != nil {
			t.Fatalf("second Rotate: %v", err)
		}
		if got.Key != key2 || got.PrevKeyHash != "" || got.PrevKeyExpires != 0 {
			t.Errorf("Rotate without grace = key %q prev %q %d, want the new key and no previous one", got.Key, got.PrevKeyHash, got.PrevKeyExpires)
		}
		wantLookup(t, s, "key2", key2, now, "u1", orig.ID, true)
		wantLookup(t, s, "key1 after a rotation without grace", key1, now, "", 0, false)
		wantLookup(t, s, "the first key, still in its grace", orig.Key, now, "", 0, false)
		if n := total(t, s, "u1"); n != 1 {
			t.Errorf("total after rotations = %d, want 1", n)
		}
	}},

	{name: "only the latest replaced key keeps verifying", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		orig := create(t, s, "u", "rot", 1)[0]
		key1, key2 := mustKey(t), mustKey(t)
		if _, err := s.Keys.Rotate(ctx, "u", orig.ID, key1, time.Hour, now); err != nil {
			t.Fatal(err)
		}
		later := now.Add(10 * time.Minute)
		got, err := s.Keys.Rotate(ctx, "u", orig.ID, key2, time.Hour, later)
		if err != nil {
			t.Fatal(err)
		}
		if got.PrevKeyHash != token.HashKey(key1) || got.PrevKeyExpires != later.Add(time.Hour).Unix() {
			t.Errorf("prev key %q until %d, want key1's until %d", got.PrevKeyHash, got.PrevKeyExpires, later.Add(time.Hour).Unix())
		}
		wantLookup(t, s, "the first key", orig.Key, later, "", 0, false)
		wantLookup(t, s, "key1, in its grace", key1, later.Add(59*time.Minute), "u", orig.ID, true)
		wantLookup(t, s, "key1, after its grace", key1, later.Add(time.Hour), "", 0, false)
		wantLookup(t, s, "key2", key2, later, "u", orig.ID, true)
	}},

	{name: "a grace under a second is none", run: func(t *testing.T, s Stores) {
		orig := create(t, s, "u", "rot", 1)[0]
		key := mustKey(t)
		got, err := s.Keys.Rotate(context.Background(), "u", orig.ID, key, 500*time.Millisecond, now)
		if err != nil {
			t.Fatal(err)
		}
		if got.PrevKeyHash != "" || got.PrevKeyExpires != 0 {
			t.Errorf("prev key %q until %d, want none", got.PrevKeyHash, got.PrevKeyExpires)
		}
		wantLookup(t, s, "old key", orig.Key, now, "", 0, false)
	}},

	{name: "rotate refusals change nothing", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		toks := create(t, s, "u", "rot", 2)
		orig := toks[0]
		tests := []struct {
			name  string
			id    int64
			key   string
			grace time.Duration
			code  string // "" for any error
		}{
			{"negative grace", orig.ID, mustKey(t), -time.Second, token.EInvalidGrace},
			{"grace over 7 days", orig.ID, mustKey(t), (token.MaxGraceSeconds + 1) * time.Second, token.EInvalidGrace},
			{"unknown id", 999, mustKey(t), 0, token.ENotFound},
			{"id 0", 0, mustKey(t), 0, token.EInvalidID},
			{"malformed key", orig.ID, orig.Key[:20], 0, ""},
			{"bad checksum", orig.ID, badChecksum(toks[1].Key), 0, ""},
			{"another token's key", orig.ID, toks[1].Key, time.Hour, ""},
			{"its own key", orig.ID, orig.Key, 0, ""},
		}
		for _, tt := range tests {
			_, err := s.Keys.Rotate(ctx, "u", tt.id, tt.key, tt.grace, now)
			if err == nil || (tt.code != "" && token.ErrorCode(err) != tt.code) {
				t.Errorf("%s: Rotate error %v, want code %q", tt.name, err, tt.code)
			}
		}
		for _, tok := range toks {
			got, err := s.Tokens.Get(ctx, "u", tok.ID)
			if err != nil || !reflect.DeepEqual(got, masked(tok)) {
				t.Errorf("token %d after refused rotations = %+v, %v; want %+v", tok.ID, got, err, masked(tok))
			}
			wantLookup(t, s, "key after refused rotations", tok.Key, now.Add(24*time.Hour), "u", tok.ID, true)
		}
	}},

	{name: "delete after rotation removes both keys", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		for _, batch := range []bool{false, true} {
			user := fmt.Sprintf("batch-%v", batch)
			toks := create(t, s, user, "d", 2)
			newKeys := make([]string, len(toks))
			for i, tok := range toks {
				newKeys[i] = mustKey(t)
				if _, err := s.Keys.Rotate(ctx, user, tok.ID, newKeys[i], time.Hour, now); err != nil {
					t.Fatal(err)
				}
			}
			if batch {
				if n, err := s.Tokens.DeleteMany(ctx, user, ids(toks)); err != nil || n != 2 {
					t.Fatalf("DeleteMany = %d, %v", n, err)
				}
			} else {
				for _, tok := range toks {
					if err := s.Tokens.Delete(ctx, user, tok.ID); err != nil {
						t.Fatal(err)
					}
				}
			}
			for i, tok := range toks {
				wantLookup(t, s, user+" old key in its grace", tok.Key, now, "", 0, false)
				wantLookup(t, s, user+" new key", newKeys[i], now, "", 0, false)
			}
		}
	}},

	{name: "concurrent rotations all succeed", run: func(t *testing.T, s Stores) {
		const n = 6
		ctx := context.Background()
		tok := create(t, s, "u", "rot", 1)[0]
		got := make([]token.Token, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			key := mustKey(t)
			wg.Go(func() { got[i], errs[i] = s.Keys.Rotate(ctx, "u", tok.ID, key, 0, now) })
		}
		wg.Wait()
		keys := map[string]bool{}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("rotation %d: %v", i, err)
			}
			keys[got[i].Key] = true
		}
		stored, err := s.Keys.RevealKey(ctx, "u", tok.ID, 0, now)
		if err != nil {
			t.Fatal(err)
		}
		if !keys[stored.Key] {
			t.Error("the stored key is none of the keys the rotations returned")
		}
		wantLookup(t, s, "stored key", stored.Key, now, "u", tok.ID, true)
		wantLookup(t, s, "first key", tok.Key, now, "", 0, false)
	}},

	{name: "lookup of an unknown key", run: func(t *testing.T, s Stores) {
		create(t, s, "u", "k", 1)
		wantLookup(t, s, "unknown key", mustKey(t), now, "", 0, false)
	}},
}

// badChecksum is key with its last character changed, so its checksum
// fails.
func badChecksum(key string) string {
	last := key[len(key)-1]
	flip := "A"
	if last == 'A' {
		flip = "B"
	}
	return key[:len(key)-1] + flip
}
