package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/llmgw/token-service/internal/token"
)

// ModelLimitsOf returns n distinct model_limits entries, valid by
// token.CheckModelEntry, whose joined form (commas between) is exactly
// size bytes: ModelLimitsOf(token.MaxModels, token.MaxModelLimitsBytes) is
// the largest list validation accepts. Each entry is 4 to 128 characters,
// so size must lie within n*5-1 and n*129-1.
func ModelLimitsOf(n, size int) []string {
	lengths := spread(size-(n-1), n)
	out := make([]string, n)
	for i, l := range lengths {
		e := fmt.Sprintf("m%03d", i%1000)
		if i >= 1000 {
			e = fmt.Sprintf("%04d", i)
		}
		out[i] = e + strings.Repeat("x", l-len(e))
	}
	return out
}

// AllowIPsOf returns n distinct allow_ips entries in canonical form (IPv6
// addresses without zero groups, which token.ParseAllowIPs keeps as they
// are), whose joined form is exactly size bytes:
// AllowIPsOf(token.MaxAllowIPs, token.MaxAllowIPsBytes) is the largest list
// validation accepts. Each entry is 17 to 38 characters and n at most 3840.
func AllowIPsOf(n, size int) []string {
	lengths := spread(size-(n-1), n)
	out := make([]string, n)
	for i, l := range lengths {
		// Seven groups of 1s fill l less the colons and the last group,
		// which holds i (three hex digits) to keep the entries distinct.
		widths := spread(l-7-3, 7)
		groups := make([]string, 0, 8)
		for _, w := range widths {
			groups = append(groups, strings.Repeat("1", w))
		}
		groups = append(groups, fmt.Sprintf("%x", 0x100+i))
		out[i] = strings.Join(groups, ":")
	}
	return out
}

// spread splits total into n parts that differ by at most one.
func spread(total, n int) []int {
	parts := make([]int, n)
	for i := range parts {
		parts[i] = total / n
		if i < total%n {
			parts[i]++
		}
	}
	return parts
}

// limitCases hold the stores to the size limits' promise: tokens at the
// largest lists validation accepts are stored, listed and searched whole,
// a full page of them at once.
var limitCases = []testCase{
	{name: "a page of 100 tokens at the largest lists", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		models := ModelLimitsOf(token.MaxModels, token.MaxModelLimitsBytes)
		ips := AllowIPsOf(token.MaxAllowIPs, token.MaxAllowIPsBytes)
		sp := spec("big", token.MaxCount)
		sp.ModelLimits, sp.AllowIPs = models, ips
		if err := (token.Rules{AllowedGroups: []string{"default"}}).Validate(&sp, now); err != nil {
			t.Fatalf("the largest lists do not validate: %v", err)
		}
		for _, count := range []int{token.MaxCount, token.MaxCount, 100 - 2*token.MaxCount} {
			sp.Count = count
			mustCreate(t, s.Tokens, "big", mustTokens(t, "big", sp))
		}

		page, err := s.Tokens.List(ctx, "big", 1, 100)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(page.Items) != 100 || page.Total != 100 {
			t.Fatalf("List: %d items, total %d; want 100 and 100", len(page.Items), page.Total)
		}
		for i, tok := range page.Items {
			if want := int64(100 - i); tok.ID != want {
				t.Errorf("item %d: id %d, want %d", i, tok.ID, want)
			}
			if !slices.Equal(tok.ModelLimits, models) || !slices.Equal(tok.AllowIPs, ips) {
				t.Errorf("item %d (id %d): lists of %d and %d entries, want %d and %d as created",
					i, tok.ID, len(tok.ModelLimits), len(tok.AllowIPs), len(models), len(ips))
			}
		}
		found, err := s.Tokens.Search(ctx, "big", token.SearchQuery{Keyword: "BIG"}, 100)
		if err != nil || len(found) != 100 {
			t.Fatalf("Search: %d tokens, %v; want 100", len(found), err)
		}
	}},

	{name: "a token is read with its user's disabled flag", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		mine := create(t, s, "42", "mine", 2)[1] // id 2, which user 43 lacks
		theirs := create(t, s, "43", "theirs", 1)[0]
		steps := []struct {
			name     string
			disabled bool
		}{
			{"enabled", false},
			{"disabled", true},
			{"enabled again", false},
		}
		for _, st := range steps {
			if err := s.Users.SetUserDisabled(ctx, "42", st.disabled); err != nil {
				t.Fatalf("%s: SetUserDisabled: %v", st.name, err)
			}
			got, disabled, err := s.Lookup.GetWithUser(ctx, "42", mine.ID)
			if err != nil || disabled != st.disabled || !reflect.DeepEqual(got, masked(mine)) {
				t.Errorf("%s: GetWithUser(42) = %+v, %v, %v; want the token, %v", st.name, got, disabled, err, st.disabled)
			}
			if _, disabled, err := s.Lookup.GetWithUser(ctx, "43", theirs.ID); err != nil || disabled {
				t.Errorf("%s: GetWithUser(43) = %v, %v; want not disabled", st.name, disabled, err)
			}
		}
		_, _, err := s.Lookup.GetWithUser(ctx, "43", mine.ID)
		wantCode(t, "another user's token", err, token.ENotFound)
		_, _, err = s.Lookup.GetWithUser(ctx, "42", mine.ID+100)
		wantCode(t, "an unknown id", err, token.ENotFound)
		_, _, err = s.Lookup.GetWithUser(ctx, "42", 0)
		wantCode(t, "id 0", err, token.EInvalidID)
	}},
}
