package verify_test

import (
	"context"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/verify"
)

// rotate gives tok a new key at now with grace and returns it.
func (e env) rotate(tb testing.TB, tok token.Token, grace time.Duration, at time.Time) token.Token {
	tb.Helper()
	key, err := token.NewKey()
	if err != nil {
		tb.Fatal(err)
	}
	got, err := e.keys.Rotate(context.Background(), tok.UserID, tok.ID, key, grace, at)
	if err != nil {
		tb.Fatalf("rotate: %v", err)
	}
	return got
}

func TestRotationWithGrace(t *testing.T) {
	e := newEnv(t)
	s := spec()
	s.RPMLimit = 100
	tok := e.create(t, "u-rot", s)
	wantCode(t, "before rotation", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 100}, now), "")
	before := e.get(t, tok)

	rotated := e.rotate(t, tok, 30*time.Second, now)
	if rotated.Key == tok.Key || rotated.ID != tok.ID {
		t.Fatalf("rotated token %d key %q: want the same id with a new key", rotated.ID, rotated.Key)
	}
	after := e.get(t, tok)
	if after.RemainQuota != before.RemainQuota || after.UsedQuota != before.UsedQuota ||
		after.RPMLimit != before.RPMLimit || after.Status != before.Status || after.Name != before.Name ||
		after.ExpiredTime != before.ExpiredTime {
		t.Errorf("after rotation %+v, want quota, used, limits, status and name of %+v", after, before)
	}

	// Inside the grace window both keys verify (the old one through its
	// cached mapping and its lookup item alike).
	wantCode(t, "old key in grace", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 1}, now.Add(10*time.Second)), "")
	wantCode(t, "new key", e.verify(t, token.VerifyRequest{Key: rotated.Key, Consume: 1}, now.Add(10*time.Second)), "")
	cold := newEnvOn(t, e)
	wantCode(t, "old key in grace, cold cache", cold.verify(t, token.VerifyRequest{Key: tok.Key}, now.Add(20*time.Second)), "")

	// Past the grace window (the clock moved) the old key is gone, warm
	// cache or cold; the new one still verifies.
	wantCode(t, "old key after grace", e.verify(t, token.VerifyRequest{Key: tok.Key}, now.Add(31*time.Second)), token.VerifyNotFound)
	wantCode(t, "old key after grace, cold cache", newEnvOn(t, e).verify(t, token.VerifyRequest{Key: tok.Key}, now.Add(31*time.Second)), token.VerifyNotFound)
	wantCode(t, "new key after grace", e.verify(t, token.VerifyRequest{Key: rotated.Key}, now.Add(31*time.Second)), "")
	if got := e.get(t, tok); got.UsedQuota != before.UsedQuota+2 {
		t.Errorf("used quota %d, want %d (charges through either key land on the token)", got.UsedQuota, before.UsedQuota+2)
	}
}

func TestRotationWithoutGraceRevokesAtOnce(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u-rot0", spec())
	// Warm the mapping cache with the old key first.
	wantCode(t, "before rotation", e.verify(t, token.VerifyRequest{Key: tok.Key}, now), "")
	rotated := e.rotate(t, tok, 0, now)
	wantCode(t, "old key, warm cache", e.verify(t, token.VerifyRequest{Key: tok.Key}, now), token.VerifyNotFound)
	wantCode(t, "old key, settle", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 5, Settle: true}, now), token.VerifyNotFound)
	wantCode(t, "new key", e.verify(t, token.VerifyRequest{Key: rotated.Key}, now), "")

	// Another user cannot rotate it.
	key, _ := token.NewKey()
	if _, err := e.keys.Rotate(context.Background(), "u-other", tok.ID, key, 0, now); token.ErrorCode(err) != token.ENotFound {
		t.Errorf("rotating another user's token: %v, want not found", err)
	}
	wantCode(t, "key after a refused rotation", e.verify(t, token.VerifyRequest{Key: rotated.Key}, now), "")
}

// newEnvOn is e's store under a fresh Verifier: another container, its
// mapping cache cold.
func newEnvOn(tb testing.TB, e env) env {
	tb.Helper()
	cold := e
	cold.verifier = verify.New(e.ledger, 0)
	return cold
}

// The grace window is judged at the caller's now on every path, the cold
// cache's key lookup included: the store's real clock never decides. The
// clock here is in 2001, long before any real time the test runs at.
func TestRotationGraceFollowsTheCallersClock(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u-clock", spec())
	past := time.Unix(1_000_000_000, 0)
	rotated := e.rotate(t, tok, time.Minute, past)
	tests := []struct {
		name string
		at   time.Time
		want string
	}{
		{"inside the grace", past.Add(59 * time.Second), ""},
		{"at the grace's end", past.Add(time.Minute), token.VerifyNotFound},
		{"past the grace", past.Add(time.Hour), token.VerifyNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cold := newEnvOn(t, e)
			wantCode(t, "old key, cold cache", cold.verify(t, token.VerifyRequest{Key: tok.Key}, tt.at), tt.want)
			wantCode(t, "new key, cold cache", newEnvOn(t, e).verify(t, token.VerifyRequest{Key: rotated.Key}, tt.at), "")
		})
	}
}

// A charge through a rotated-out key re-checks its grace on the stored item:
// a verify read inside the grace whose write lands after it charges nothing.
func TestChargeThroughOldKeyPastGraceIsRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok := e.create(t, "u-late", spec())
	e.rotate(t, tok, 30*time.Second, now)
	wantCode(t, "old key inside the grace", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 1}, now.Add(10*time.Second)), "")

	st, err := e.ledger.ReadForVerify(ctx, tok.UserID, tok.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Token.AcceptsKeyHash(tok.KeyHash, now.Add(29*time.Second)) {
		t.Fatal("the old key is not accepted inside its grace")
	}
	tests := []struct {
		name    string
		hash    string
		at      time.Time
		charged bool
	}{
		{"old key past the grace", tok.KeyHash, now.Add(30 * time.Second), false},
		{"old key long past the grace", tok.KeyHash, now.Add(time.Hour), false},
		{"old key inside the grace", tok.KeyHash, now.Add(29 * time.Second), true},
		{"current key past the old one's grace", st.Token.KeyHash, now.Add(time.Hour), true},
	}
	for _, tt := range tests {
		before := e.get(t, tok)
		_, written, err := e.ledger.Write(ctx, st, token.Write{Consume: 5, KeyHash: tt.hash}, tt.at)
		switch {
		case err != nil:
			t.Errorf("%s: charge: %v", tt.name, err)
		case written != tt.charged:
			t.Errorf("%s: charge written %v, want %v", tt.name, written, tt.charged)
		}
		want := before.UsedQuota
		if tt.charged {
			want += 5
		}
		if got := e.get(t, tok).UsedQuota; got != want {
			t.Errorf("%s: used_quota %d, want %d", tt.name, got, want)
		}
	}
}

// A settle or refund of a call made through the old key during its grace
// is billed to the token, as its verify was; past the grace the old key is
// unknown to settles and refunds too.
func TestSettleAndRefundThroughOldKeyFollowTheGrace(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u-settle-old", spec())
	e.rotate(t, tok, 30*time.Second, now)
	inside, past := now.Add(10*time.Second), now.Add(31*time.Second)

	before := e.get(t, tok)
	wantCode(t, "settle through the old key inside the grace", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 7, Settle: true}, inside), "")
	wantCode(t, "refund through the old key inside the grace", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: -2}, inside), "")
	if got := e.get(t, tok); got.UsedQuota != before.UsedQuota+5 || got.RemainQuota != before.RemainQuota-5 {
		t.Fatalf("after settle 7 and refund 2: used %d remain %d, want used %d remain %d",
			got.UsedQuota, got.RemainQuota, before.UsedQuota+5, before.RemainQuota-5)
	}

	wantCode(t, "settle through the old key past the grace", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 7, Settle: true}, past), token.VerifyNotFound)
	wantCode(t, "refund through the old key past the grace", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: -1}, past), token.VerifyNotFound)
	if got := e.get(t, tok); got.UsedQuota != before.UsedQuota+5 {
		t.Fatalf("past the grace, used %d changed", got.UsedQuota)
	}

	// The store re-checks the key in its write: a state read inside the
	// grace and written past it (a slow call) charges and refunds nothing.
	st, err := e.ledger.ReadForVerify(context.Background(), tok.UserID, tok.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, written, err := e.ledger.Write(context.Background(), st, token.Write{KeyHash: tok.KeyHash, Settle: 3}, past); err != nil || written {
		t.Errorf("store settle through the old key past the grace: written %v, %v; want refused", written, err)
	}
	if _, written, err := e.ledger.Write(context.Background(), st, token.Write{KeyHash: tok.KeyHash, GiveBack: 1, GiveBackRemain: 1}, past); err != nil || written {
		t.Errorf("store refund through the old key past the grace: written %v, %v; want refused", written, err)
	}
	if got := e.get(t, tok); got.UsedQuota != before.UsedQuota+5 {
		t.Fatalf("store writes past the grace changed used to %d", got.UsedQuota)
	}
}

// A plain verify through the key a rotation replaced, inside its grace,
// records the access as one through the current key does.
func TestVerifyThroughOldKeyInGraceTouches(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u-touch", spec())
	e.rotate(t, tok, time.Hour, now)
	at := now.Add(2 * time.Minute)
	wantCode(t, "old key in grace", e.verify(t, token.VerifyRequest{Key: tok.Key}, at), "")
	if got := e.get(t, tok).AccessedTime; got != at.Unix() {
		t.Errorf("accessed_time = %d, want %d", got, at.Unix())
	}
}
