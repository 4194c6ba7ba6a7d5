package verify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/verify"
)

// Events with request ids (README "The events and answers" and "The hold /
// settle pattern, step by step"), through the verifier over the DynamoDB ledger. Every
// test takes the clock as a parameter.

func hold(key, id string, consume int64) token.VerifyRequest {
	return token.VerifyRequest{Key: key, Model: "gpt-4", ClientIP: "10.0.0.1", Consume: consume, RequestID: id}
}

func settle(key, id string, final int64) token.VerifyRequest {
	return token.VerifyRequest{Key: key, Model: "gpt-4", ClientIP: "10.0.0.1", Consume: final, Settle: true, RequestID: id}
}

func refund(key, id string, amount int64) token.VerifyRequest {
	return token.VerifyRequest{Key: key, Model: "gpt-4", ClientIP: "10.0.0.1", Consume: -amount, RequestID: id}
}

// amounts checks a's charged, delta and shortfall (want -1: absent).
func amounts(tb testing.TB, what string, a verify.Answer, charged, delta, shortfall int64) {
	tb.Helper()
	got := func(p *int64) int64 {
		if p == nil {
			return -1
		}
		return *p
	}
	if got(a.Charged) != charged || got(a.Delta) != delta || got(a.Shortfall) != shortfall {
		tb.Errorf("%s: charged %d delta %d shortfall %d; want %d, %d, %d (-1: absent)",
			what, got(a.Charged), got(a.Delta), got(a.Shortfall), charged, delta, shortfall)
	}
}

// sameAnswer fails unless a and b are the same answer but for replayed,
// which only replay carries.
func sameAnswer(tb testing.TB, what string, first, replay verify.Answer) {
	tb.Helper()
	if first.Replayed || !replay.Replayed {
		tb.Errorf("%s: replayed %v then %v, want false then true", what, first.Replayed, replay.Replayed)
	}
	replay.Replayed = false
	a, _ := json.Marshal(first)
	b, _ := json.Marshal(replay)
	if string(a) != string(b) {
		tb.Errorf("%s: answers differ\n first %s\nreplay %s", what, a, b)
	}
}

// quotas checks tok's stored remain_quota and used_quota.
func (e env) quotas(tb testing.TB, what string, tok token.Token, remain, used int64) {
	tb.Helper()
	got := e.get(tb, tok)
	if got.RemainQuota != remain || got.UsedQuota != used {
		tb.Errorf("%s: remain %d used %d, want %d, %d", what, got.RemainQuota, got.UsedQuota, remain, used)
	}
}

// record reads tok's record of id as the ledger stores it, nil for none.
func (e env) record(tb testing.TB, tok token.Token, id string) *token.Request {
	tb.Helper()
	st, err := e.ledger.ReadForVerify(context.Background(), tok.UserID, tok.ID, id)
	if err != nil {
		tb.Fatal(err)
	}
	return st.Request
}

func withQuota(q int64) token.Spec {
	s := spec()
	s.RemainQuota = q
	return s
}

// A hold whose answer is lost is sent again with the same id: charged
// once, and the second answer is the first one, replayed.
func TestHoldRetriedAfterALostAnswer(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u1", withQuota(1000))
	first := e.verify(t, hold(tok.Key, "req-1", 100), now)
	wantCode(t, "hold", first, "")
	amounts(t, "hold", first, 100, 100, -1)
	retry := e.verify(t, hold(tok.Key, "req-1", 100), now.Add(3*time.Second))
	sameAnswer(t, "retried hold", first, retry)
	e.quotas(t, "after the retry", tok, 900, 100)
}

func TestConcurrentCopiesOfOneHold(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u1", withQuota(1000))
	e.verify(t, token.VerifyRequest{Key: tok.Key}, now) // cache the mapping
	const n = 50
	answers := make([]verify.Answer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			answers[i], errs[i] = e.verifier.Verify(context.Background(), hold(tok.Key, "req-50", 70), now)
		})
	}
	wg.Wait()
	var first []verify.Answer
	for i, a := range answers {
		if errs[i] != nil {
			t.Fatalf("copy %d: %v", i, errs[i])
		}
		wantCode(t, "copy", a, "")
		if !a.Replayed {
			first = append(first, a)
		}
	}
	if len(first) != 1 {
		t.Fatalf("%d copies applied, want exactly 1", len(first))
	}
	for i, a := range answers {
		if a.Replayed {
			sameAnswer(t, fmt.Sprintf("copy %d", i), first[0], a)
		}
	}
	e.quotas(t, "after 50 copies", tok, 930, 70)
}

// Only events that wrote are recorded: a refused hold leaves no record, so
// the same id succeeds once the quota allows it.
func TestRefusedHoldRecordsNothing(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u1", withQuota(50))
	wantCode(t, "hold over the quota", e.verify(t, hold(tok.Key, "req-top-up", 80), now), token.VerifyInsufficientQuota)
	if rec := e.record(t, tok, "req-top-up"); rec != nil {
		t.Fatalf("a refused hold left a record %+v", rec)
	}
	more := int64(100)
	if _, err := e.tokens.Update(context.Background(), "u1", tok.ID, token.Patch{RemainQuota: &more}, now); err != nil {
		t.Fatal(err)
	}
	a := e.verify(t, hold(tok.Key, "req-top-up", 80), now)
	wantCode(t, "the same id after a top-up", a, "")
	if a.Replayed {
		t.Error("the first hold that applied is replayed")
	}
	e.quotas(t, "after the hold", tok, 20, 80)
}

func TestDuplicateOrConflict(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u1", withQuota(1000))
	first := e.verify(t, hold(tok.Key, "r", 100), now)
	otherModel, otherIP, otherAmount := hold(tok.Key, "r", 100), hold(tok.Key, "r", 100), hold(tok.Key, "r", 101)
	otherModel.Model = "gpt-4o"
	otherIP.ClientIP = "10.0.0.2"
	for name, req := range map[string]token.VerifyRequest{"another model": otherModel, "another client_ip": otherIP, "another amount": otherAmount} {
		wantCode(t, name, e.verify(t, req, now), token.VerifyRequestConflict)
	}
	sameAnswer(t, "a true duplicate", first, e.verify(t, hold(tok.Key, "r", 100), now))
	e.quotas(t, "after conflicts and a duplicate", tok, 900, 100)
}

func TestHoldThenSettle(t *testing.T) {
	t.Run("settle below the hold gives back", func(t *testing.T) {
		e := newEnv(t)
		tok := e.create(t, "u1", withQuota(1000))
		amounts(t, "hold 300", e.verify(t, hold(tok.Key, "r", 300), now), 300, 300, -1)
		a := e.verify(t, settle(tok.Key, "r", 120), now)
		wantCode(t, "settle 120", a, "")
		amounts(t, "settle 120", a, 120, -180, 0)
		if a.Token.RemainQuota != 880 || a.Token.UsedQuota != 120 {
			t.Errorf("settle 120: token remain %d used %d, want 880, 120", a.Token.RemainQuota, a.Token.UsedQuota)
		}
		e.quotas(t, "after settle 120", tok, 880, 120)
	})
	t.Run("settle above the hold charges what is left", func(t *testing.T) {
		e := newEnv(t)
		tok := e.create(t, "u1", withQuota(150))
		amounts(t, "hold 100", e.verify(t, hold(tok.Key, "r", 100), now), 100, 100, -1)
		e.quotas(t, "after hold 100", tok, 50, 100)
		a := e.verify(t, settle(tok.Key, "r", 250), now)
		wantCode(t, "settle 250", a, "")
		amounts(t, "settle 250", a, 150, 50, 100)
		if a.Token.Status != token.StatusExhausted || a.Token.RemainQuota != 0 {
			t.Errorf("settle 250: status %d remain %d, want 4, 0", a.Token.Status, a.Token.RemainQuota)
		}
		e.quotas(t, "after settle 250", tok, 0, 150)

		again := e.verify(t, settle(tok.Key, "r", 250), now.Add(time.Minute))
		sameAnswer(t, "the same settle again", a, again)
		e.quotas(t, "after the same settle again", tok, 0, 150)

		wantCode(t, "a settle with another final", e.verify(t, settle(tok.Key, "r", 260), now), token.VerifyRequestConflict)
		wantCode(t, "a hold after the settle", e.verify(t, hold(tok.Key, "r", 100), now), token.VerifyRequestConflict)
		e.quotas(t, "after the conflicts", tok, 0, 150)
	})
	t.Run("settle of 0 gives all back", func(t *testing.T) {
		e := newEnv(t)
		tok := e.create(t, "u1", withQuota(1000))
		e.verify(t, hold(tok.Key, "r", 300), now)
		amounts(t, "settle 0", e.verify(t, settle(tok.Key, "r", 0), now), 0, -300, 0)
		e.quotas(t, "after settle 0", tok, 1000, 0)
	})
	t.Run("settle without a hold", func(t *testing.T) {
		e := newEnv(t)
		tok := e.create(t, "u1", withQuota(100))
		off := token.StatusDisabled
		if _, err := e.tokens.Update(context.Background(), "u1", tok.ID, token.Patch{Status: &off}, now); err != nil {
			t.Fatal(err)
		}
		// Checks skipped, as a settle skips them; recorded even when
		// nothing was left to charge.
		amounts(t, "settle 130", e.verify(t, settle(tok.Key, "r", 130), now), 100, 100, 30)
		amounts(t, "settle 5 when exhausted", e.verify(t, settle(tok.Key, "r2", 5), now), 0, 0, 5)
		if rec := e.record(t, tok, "r2"); rec == nil || rec.State != token.RequestSettled {
			t.Errorf("settle of nothing: record %+v, want settled", rec)
		}
		e.quotas(t, "after settles", tok, 0, 100)
	})
}

func TestRefundWithRequestID(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u1", withQuota(1000))
	wantCode(t, "refund of an unknown id", e.verify(t, refund(tok.Key, "never-held", 10), now), token.VerifyInvalidRequest)

	e.verify(t, hold(tok.Key, "r", 100), now)
	e.verify(t, settle(tok.Key, "r", 60), now)
	e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 500}, now) // another request's charge
	e.quotas(t, "before the refund", tok, 440, 560)

	a := e.verify(t, refund(tok.Key, "r", 200), now)
	wantCode(t, "refund 200 of a request that cost 60", a, "")
	amounts(t, "refund 200 of 60", a, 0, -60, -1)
	e.quotas(t, "after the refund", tok, 500, 500)

	sameAnswer(t, "the same refund again", a, e.verify(t, refund(tok.Key, "r", 200), now))
	wantCode(t, "another refund amount", e.verify(t, refund(tok.Key, "r", 10), now), token.VerifyRequestConflict)
	wantCode(t, "a settle after the refund", e.verify(t, settle(tok.Key, "r", 60), now), token.VerifyRequestConflict)
	e.quotas(t, "after the duplicate and conflicts", tok, 500, 500)

	// A refund of a hold gives back at most what it holds.
	e.verify(t, hold(tok.Key, "h", 40), now)
	amounts(t, "partial refund of a hold", e.verify(t, refund(tok.Key, "h", 15), now), 25, -15, -1)
	e.quotas(t, "after the partial refund", tok, 475, 525)
}

// A give-back returns to remain_quota what the request took from it,
// whatever unlimited_quota says now.
func TestGiveBackFollowsTheRecordNotTheFlag(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u1", withQuota(1000))
	e.verify(t, hold(tok.Key, "r", 100), now)
	unlimited := true
	if _, err := e.tokens.Update(context.Background(), "u1", tok.ID, token.Patch{UnlimitedQuota: &unlimited}, now); err != nil {
		t.Fatal(err)
	}
	e.verify(t, hold(tok.Key, "u", 50), now) // charged to used_quota only
	e.quotas(t, "after both holds", tok, 900, 150)
	amounts(t, "refund the limited hold", e.verify(t, refund(tok.Key, "r", 100), now), 0, -100, -1)
	amounts(t, "refund the unlimited hold", e.verify(t, refund(tok.Key, "u", 50), now), 0, -50, -1)
	e.quotas(t, "after both refunds", tok, 1000, 0)
}

func TestRequestIDOnTwoTokens(t *testing.T) {
	e := newEnv(t)
	a := e.create(t, "u1", withQuota(1000))
	b := e.create(t, "u1", withQuota(1000))
	first := e.verify(t, hold(a.Key, "shared", 100), now)
	second := e.verify(t, hold(b.Key, "shared", 100), now)
	if first.Replayed || second.Replayed {
		t.Error("the same id on another token is replayed")
	}
	e.quotas(t, "token a", a, 900, 100)
	e.quotas(t, "token b", b, 900, 100)
}

// A record expires RequestRecordSeconds after its last write: from then on
// it counts as absent, in the verifier's read and in the write's
// condition, though TTL has not deleted it.
func TestExpiredRecordIsANewRequest(t *testing.T) {
	e := newEnv(t)
	e.verifier.RecordLifetime(time.Hour)
	tok := e.create(t, "u1", withQuota(1000))
	first := e.verify(t, hold(tok.Key, "r", 100), now)
	sameAnswer(t, "inside the hour", first, e.verify(t, hold(tok.Key, "r", 100), now.Add(59*time.Minute)))

	later := now.Add(time.Hour)
	if rec := e.record(t, tok, "r"); rec == nil || rec.Live(later) != nil {
		t.Fatalf("record %+v: want one that TTL has not deleted, expired at %d", rec, later.Unix())
	}
	a := e.verify(t, hold(tok.Key, "r", 100), later)
	wantCode(t, "the same hold after the record expired", a, "")
	if a.Replayed {
		t.Fatal("an expired record was replayed")
	}
	e.quotas(t, "charged again", tok, 800, 200)
	// A settle of the new hold settles it only; a refund from an expired
	// record is a refund of nothing.
	amounts(t, "settle of the new hold", e.verify(t, settle(tok.Key, "r", 100), later), 100, 0, 0)
	wantCode(t, "refund after the settle expired", e.verify(t, refund(tok.Key, "r", 10), later.Add(2*time.Hour)), token.VerifyInvalidRequest)
	e.quotas(t, "after all", tok, 800, 200)
}

// Each write moves the record's expiry: it lasts RequestRecordSeconds
// after its last write.
func TestRecordExpiresAfterItsLastWrite(t *testing.T) {
	e := newEnv(t)
	e.verifier.RecordLifetime(time.Hour)
	tok := e.create(t, "u1", withQuota(1000))
	e.verify(t, hold(tok.Key, "r", 100), now)
	settledAt := now.Add(50 * time.Minute)
	e.verify(t, settle(tok.Key, "r", 100), settledAt)
	if rec := e.record(t, tok, "r"); rec == nil || rec.ExpiresAt != settledAt.Add(time.Hour).Unix() {
		t.Fatalf("record %+v: want it to expire an hour after the settle", rec)
	}
	a := e.verify(t, settle(tok.Key, "r", 100), now.Add(100*time.Minute))
	if !a.Replayed {
		t.Error("a duplicate inside the hour after the last write is not replayed")
	}
}

func TestHoldThroughTheOldKeySettledThroughTheNew(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u1", withQuota(1000))
	rotated := e.rotate(t, tok, time.Minute, now)
	amounts(t, "hold through the old key", e.verify(t, hold(tok.Key, "r", 300), now.Add(10*time.Second)), 300, 300, -1)
	a := e.verify(t, settle(rotated.Key, "r", 100), now.Add(20*time.Second))
	wantCode(t, "settle through the new key", a, "")
	amounts(t, "settle through the new key", a, 100, -200, 0)
	e.quotas(t, "after the settle", tok, 900, 100)
	// Past the grace, the old key finds nothing, duplicates included.
	wantCode(t, "duplicate through the old key past its grace", e.verify(t, settle(tok.Key, "r", 100), now.Add(2*time.Minute)), token.VerifyNotFound)
	if a := e.verify(t, settle(rotated.Key, "r", 100), now.Add(2*time.Minute)); !a.Replayed {
		t.Errorf("duplicate through the new key: %+v, want replayed", a)
	}
}

// A duplicate answers even after the token was disabled, counts toward no
// limit, and changes nothing; a deleted token is not_found.
func TestDuplicateSkipsChecksAndLimits(t *testing.T) {
	e := newEnv(t)
	s := withQuota(1000)
	s.RPMLimit = 1
	tok := e.create(t, "u1", s)
	first := e.verify(t, hold(tok.Key, "r", 100), now)
	sameAnswer(t, "duplicate over the rpm limit", first, e.verify(t, hold(tok.Key, "r", 100), now))
	wantCode(t, "another hold over the rpm limit", e.verify(t, hold(tok.Key, "r2", 100), now), token.VerifyRateLimited)
	off := token.StatusDisabled
	if _, err := e.tokens.Update(context.Background(), "u1", tok.ID, token.Patch{Status: &off}, now); err != nil {
		t.Fatal(err)
	}
	sameAnswer(t, "duplicate after the disable", first, e.verify(t, hold(tok.Key, "r", 100), now))
	wantCode(t, "a new hold after the disable", e.verify(t, hold(tok.Key, "r3", 100), now), token.VerifyDisabled)
	e.quotas(t, "after duplicates", tok, 900, 100)
	if err := e.tokens.Delete(context.Background(), "u1", tok.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "duplicate after the delete", e.verify(t, hold(tok.Key, "r", 100), now), token.VerifyNotFound)
}

// Cost on a warm container without contention: an event with a request id
// is 1 read (token, user and record in one BatchGetItem) and 1 write (one
// TransactWriteItems); a duplicate is the read alone; a key's first use
// adds its lookup.
func TestRequestsWithRequestID(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u1", withQuota(1000))
	read := map[string]int{"BatchGetItem": 1}
	readWrite := map[string]int{"BatchGetItem": 1, "TransactWriteItems": 1}
	tests := []struct {
		name string
		req  token.VerifyRequest
		want map[string]int
	}{
		{"hold, first use of the key", hold(tok.Key, "a", 10), map[string]int{"GetItem": 1, "BatchGetItem": 1, "TransactWriteItems": 1}},
		{"hold", hold(tok.Key, "b", 10), readWrite},
		{"duplicate hold", hold(tok.Key, "b", 10), read},
		{"settle", settle(tok.Key, "b", 5), readWrite},
		{"duplicate settle", settle(tok.Key, "b", 5), read},
		{"refund", refund(tok.Key, "b", 5), readWrite},
		{"duplicate refund", refund(tok.Key, "b", 5), read},
		{"settle without a hold", settle(tok.Key, "c", 5), readWrite},
		{"conflict", hold(tok.Key, "c", 5), read},
		{"refused hold", hold(tok.Key, "d", 5000), read},
		{"plain verify with an id (ignored)", token.VerifyRequest{Key: tok.Key, RequestID: "e"}, read},
	}
	for _, tt := range tests {
		e.counter.Reset()
		if _, err := e.verifier.Verify(context.Background(), tt.req, now); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := e.counter.Counts(); !maps.Equal(got, tt.want) {
			t.Errorf("%s: requests %v, want %v", tt.name, got, tt.want)
		}
	}
}
