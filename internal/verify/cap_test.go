package verify_test

import (
	"context"
	"sync"
	"testing"

	"github.com/llmgw/token-service/internal/token"
)

// used_quota never passes 2^53-1 (README "The token object", used_quota). The
// attack that found it: 18,500 consumes of 5e14 on an unlimited token took
// it past 2^53 after 19 calls and past int64 after 18,447, and from then on
// every read of the user's tokens failed. The same run with the largest
// consume there is stops at the cap after 18 charges.
func TestUsedQuotaStopsAtTheCap(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := spec()
	s.UnlimitedQuota = true
	tok := e.create(t, "u-cap", s)
	other := e.create(t, "u-cap", spec())

	const consume = token.MaxQuota
	var accepted int64
	for i := range 40 {
		a := e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: consume}, now)
		if !a.Valid {
			wantCode(t, "consume past the cap", a, token.VerifyInsufficientQuota)
		} else {
			accepted++
		}
		// Exact for every accepted charge, unchanged by every refused one.
		if got := e.get(t, tok); got.UsedQuota != accepted*consume || got.RemainQuota != 1000 {
			t.Fatalf("after consume %d: used %d remain %d, want %d, 1000", i+1, got.UsedQuota, got.RemainQuota, accepted*consume)
		}
	}
	if accepted != token.MaxUsedQuota/consume {
		t.Fatalf("%d consumes of %d accepted, want %d", accepted, int64(consume), int64(token.MaxUsedQuota/consume))
	}
	// What is left below the cap still fits, to the last unit; then nothing.
	rest := token.MaxUsedQuota - accepted*consume
	wantCode(t, "the rest up to the cap", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: rest}, now), "")
	wantCode(t, "1 past the cap", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 1}, now), token.VerifyInsufficientQuota)
	wantCode(t, "a plain verify at the cap", e.verify(t, token.VerifyRequest{Key: tok.Key}, now), "")
	wantCode(t, "a hold at the cap", e.verify(t, hold(tok.Key, "r", 1), now), token.VerifyInsufficientQuota)
	if rec := e.record(t, tok, "r"); rec != nil {
		t.Errorf("a hold refused at the cap left a record %+v", rec)
	}
	if got := e.get(t, tok).UsedQuota; got != token.MaxUsedQuota {
		t.Fatalf("used %d, want the cap %d", got, int64(token.MaxUsedQuota))
	}

	// The user's account keeps answering.
	if p, err := e.tokens.List(ctx, "u-cap", 1, 100); err != nil || len(p.Items) != 2 || p.Total != 2 {
		t.Errorf("list: %d items, total %d, %v; want 2, 2", len(p.Items), p.Total, err)
	}
	if got, err := e.tokens.Search(ctx, "u-cap", token.SearchQuery{Key: tok.Key}, 100); err != nil || len(got) != 1 {
		t.Errorf("search by key: %d tokens, %v; want 1", len(got), err)
	}
	if n, err := e.tokens.DeleteMany(ctx, "u-cap", []int64{tok.ID, other.ID}); err != nil || n != 2 {
		t.Errorf("batch delete: %d, %v; want 2", n, err)
	}
}

// A limited token's bookkeeping stays exact up to the cap: every accepted
// charge moves remain_quota and used_quota by the same amount.
func TestLimitedTokenBookkeepingUpToTheCap(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok := e.create(t, "u-cap", withQuota(token.MaxQuota))
	granted := int64(token.MaxQuota)
	for range 20 {
		before := e.get(t, tok)
		a := e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: token.MaxQuota}, now)
		after := e.get(t, tok)
		switch {
		case a.Valid && (after.UsedQuota != before.UsedQuota+token.MaxQuota || after.RemainQuota != before.RemainQuota-token.MaxQuota):
			t.Fatalf("accepted charge: used %d -> %d, remain %d -> %d", before.UsedQuota, after.UsedQuota, before.RemainQuota, after.RemainQuota)
		case !a.Valid && (after.UsedQuota != before.UsedQuota || after.RemainQuota != before.RemainQuota):
			t.Fatalf("refused charge (%s) changed the token: %+v -> %+v", a.Code, before, after)
		case !a.Valid:
			wantCode(t, "charge past the cap", a, token.VerifyInsufficientQuota)
		}
		if after.RemainQuota+after.UsedQuota != granted {
			t.Fatalf("remain %d + used %d != granted %d", after.RemainQuota, after.UsedQuota, granted)
		}
		// The owner tops the token up again.
		full := int64(token.MaxQuota)
		if _, err := e.tokens.Update(ctx, "u-cap", tok.ID, token.Patch{RemainQuota: &full}, now); err != nil {
			t.Fatal(err)
		}
		granted += full - after.RemainQuota
	}
	if got := e.get(t, tok).UsedQuota; got != token.MaxUsedQuota/token.MaxQuota*token.MaxQuota {
		t.Errorf("used %d, want %d", got, int64(token.MaxUsedQuota/token.MaxQuota*token.MaxQuota))
	}
}

// A settle that would take used_quota past the cap charges up to it; the
// rest is shortfall. With a request id, the held part counts.
func TestSettlePastTheCap(t *testing.T) {
	e := newEnv(t)
	s := spec()
	s.UnlimitedQuota = true
	tok := e.create(t, "u-cap", s)
	for range token.MaxUsedQuota / token.MaxQuota {
		wantCode(t, "fill", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: token.MaxQuota}, now), "")
	}
	left := token.MaxUsedQuota - e.get(t, tok).UsedQuota
	wantCode(t, "fill to 100 below the cap", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: left - 100}, now), "")

	a := e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: 250, Settle: true}, now)
	wantCode(t, "settle 250", a, "")
	if *a.Charged != 100 || *a.Shortfall != 150 || a.Token.UsedQuota != token.MaxUsedQuota {
		t.Errorf("settle 250 at 100 below the cap: charged %d shortfall %d used %d; want 100, 150, the cap", *a.Charged, *a.Shortfall, a.Token.UsedQuota)
	}
	// Hold what fits, then settle for more: the part above the cap is shortfall.
	wantCode(t, "refund 60", e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: -60}, now), "")
	amounts(t, "hold 40", e.verify(t, hold(tok.Key, "r", 40), now), 40, 40, -1)
	amounts(t, "settle 100 of a hold of 40", e.verify(t, settle(tok.Key, "r", 100), now), 60, 20, 40)
	if got := e.get(t, tok).UsedQuota; got != token.MaxUsedQuota {
		t.Errorf("used %d, want the cap", got)
	}
}

// The store's condition holds the cap under concurrency: of 20 concurrent
// consumes where 10 fit below the cap, exactly 10 are charged.
func TestCapUnderConcurrency(t *testing.T) {
	e := newEnv(t)
	s := spec()
	s.UnlimitedQuota = true
	tok := e.create(t, "u-cap", s)
	for range token.MaxUsedQuota / token.MaxQuota {
		e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: token.MaxQuota}, now)
	}
	const each = 1000
	left := token.MaxUsedQuota - e.get(t, tok).UsedQuota
	e.verify(t, token.VerifyRequest{Key: tok.Key, Consume: left - 10*each - each/2}, now)
	var wg sync.WaitGroup
	var mu sync.Mutex
	valid := 0
	for range 20 {
		wg.Go(func() {
			a, err := e.verifier.Verify(context.Background(), token.VerifyRequest{Key: tok.Key, Consume: each}, now)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if a.Valid {
				valid++
			}
		})
	}
	wg.Wait()
	if got := e.get(t, tok).UsedQuota; valid != 10 || got != token.MaxUsedQuota-each/2 {
		t.Errorf("%d charged, used %d; want 10 and %d", valid, got, int64(token.MaxUsedQuota-each/2))
	}

	// A charge decided on a stale read is refused by the write's condition.
	st, err := e.ledger.ReadForVerify(context.Background(), tok.UserID, tok.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	st.Token.UsedQuota = 0 // as if read long ago
	if _, written, err := e.ledger.Write(context.Background(), st, token.Write{Consume: each}, now); err != nil || written {
		t.Errorf("a charge past the cap on a stale read: written %v, %v; want refused by the condition", written, err)
	}
}
