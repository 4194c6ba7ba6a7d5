package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/token"
)

// tokenCases hold token.Store to its contract.
var tokenCases = []testCase{
	{name: "create returns ids, full keys and every field", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		in := mustTokens(t, "alice", spec("work", 2))
		created := mustCreate(t, s.Tokens, "alice", in)
		if got, want := ids(created), []int64{1, 2}; !slices.Equal(got, want) {
			t.Fatalf("created ids = %v, want %v", got, want)
		}
		for i, c := range created {
			want := in[i]
			want.ID = c.ID
			if !reflect.DeepEqual(c, want) {
				t.Errorf("created[%d] = %+v, want %+v", i, c, want)
			}
			got, err := s.Tokens.Get(ctx, "alice", c.ID)
			if err != nil {
				t.Fatalf("Get(%d): %v", c.ID, err)
			}
			if got.Key != "" || got.KeyMask != token.MaskKey(c.Key) || got.KeyHash != token.HashKey(c.Key) {
				t.Errorf("Get(%d): Key %q KeyMask %q, want empty and %q", c.ID, got.Key, got.KeyMask, token.MaskKey(c.Key))
			}
			if !reflect.DeepEqual(got, masked(c)) {
				t.Errorf("Get(%d) = %+v, want %+v", c.ID, got, masked(c))
			}
			wantLookup(t, s, "created key", c.Key, now, "alice", c.ID, true)
		}
		if n := total(t, s, "alice"); n != 2 {
			t.Errorf("total = %d, want 2", n)
		}
	}},

	{name: "a key without sk- is stored with it", run: func(t *testing.T, s Stores) {
		toks := mustTokens(t, "u", spec("bare", 1))
		key := toks[0].Key
		toks[0].Key = strings.TrimPrefix(key, token.KeyPrefix)
		got := mustCreate(t, s.Tokens, "u", toks)[0]
		if got.Key != key || got.KeyHash != token.HashKey(key) || got.KeyMask != token.MaskKey(key) {
			t.Errorf("created key %q hash %q mask %q, want the canonical key's", got.Key, got.KeyHash, got.KeyMask)
		}
	}},

	{name: "get of an unknown or invalid id", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		create(t, s, "u", "a", 1)
		tests := []struct {
			id   int64
			code string
		}{
			{999, token.ENotFound},
			{0, token.EInvalidID},
			{-1, token.EInvalidID},
		}
		for _, tt := range tests {
			_, err := s.Tokens.Get(ctx, "u", tt.id)
			wantCode(t, fmt.Sprintf("Get(%d)", tt.id), err, tt.code)
			_, err = s.Tokens.Update(ctx, "u", tt.id, token.Patch{Name: ptr("x")}, now)
			wantCode(t, fmt.Sprintf("Update(%d)", tt.id), err, tt.code)
			wantCode(t, fmt.Sprintf("Delete(%d)", tt.id), s.Tokens.Delete(ctx, "u", tt.id), tt.code)
		}
	}},

	{name: "an invalid user id is refused", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		for _, uid := range []string{"", "a#b", "USER#x", strings.Repeat("u", 65)} {
			toks := mustTokens(t, "u", spec("x", 1))
			if _, err := s.Tokens.Create(ctx, uid, toks); err == nil {
				t.Errorf("Create for user %q: got nil error", uid)
			}
			if _, err := s.Tokens.List(ctx, uid, 1, 10); err == nil {
				t.Errorf("List for user %q: got nil error", uid)
			}
			if _, err := s.Tokens.Get(ctx, uid, 1); err == nil {
				t.Errorf("Get for user %q: got nil error", uid)
			}
		}
	}},

	{name: "ids are never reused", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		create(t, s, "u1", "a", 3)
		if err := s.Tokens.Delete(ctx, "u1", 3); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if n, err := s.Tokens.DeleteMany(ctx, "u1", []int64{1, 2}); err != nil || n != 2 {
			t.Fatalf("DeleteMany = %d, %v; want 2, nil", n, err)
		}
		got := create(t, s, "u1", "b", 2)
		if want := []int64{4, 5}; !slices.Equal(ids(got), want) {
			t.Errorf("ids after deleting every token = %v, want %v", ids(got), want)
		}
		if err := s.Tokens.Delete(ctx, "u1", 4); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if got := create(t, s, "u1", "c", 1); got[0].ID != 6 {
			t.Errorf("id after deleting one of two = %d, want 6", got[0].ID)
		}
		if got := create(t, s, "u1", "d", 1); got[0].ID != 7 {
			t.Errorf("next id = %d, want 7", got[0].ID)
		}
		// Ids are per user.
		if other := create(t, s, "u2", "c", 1); other[0].ID != 1 {
			t.Errorf("another user's first id = %d, want 1", other[0].ID)
		}
	}},

	{name: "a create past the limit stores nothing", limit: 5, run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		create(t, s, "u", "a", 3)
		refused := mustTokens(t, "u", spec("b", 3))
		_, err := s.Tokens.Create(ctx, "u", refused)
		wantCode(t, "Create past the limit", err, token.ETokenLimit)
		if n := total(t, s, "u"); n != 3 {
			t.Errorf("total after a refused create = %d, want 3", n)
		}
		wantLookup(t, s, "refused key", refused[0].Key, now, "", 0, false)
		got := create(t, s, "u", "c", 2)
		if want := []int64{4, 5}; !slices.Equal(ids(got), want) {
			t.Errorf("ids = %v, want %v (a refused create takes no ids)", ids(got), want)
		}
		_, err = s.Tokens.Create(ctx, "u", mustTokens(t, "u", spec("d", 1)))
		wantCode(t, "Create at the limit", err, token.ETokenLimit)
		// The limit is per user.
		create(t, s, "other", "e", 5)
	}},

	{name: "create count", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		got := create(t, s, "u", "bulk", token.MaxCount)
		if want := seq(1, 1, token.MaxCount); !slices.Equal(ids(got), want) {
			t.Errorf("ids = %v, want %v", ids(got), want)
		}
		if got[1].Name != "bulk-2" {
			t.Errorf("second name = %q, want bulk-2", got[1].Name)
		}
		if n := total(t, s, "u"); n != token.MaxCount {
			t.Errorf("total = %d, want %d", n, token.MaxCount)
		}
		for _, count := range []int{0, token.MaxCount + 1} {
			var toks []token.Token
			if count > 0 {
				toks = mustTokens(t, "u", spec("x", count))
			}
			_, err := s.Tokens.Create(ctx, "u", toks)
			wantCode(t, fmt.Sprintf("Create of %d", count), err, token.EInvalidCount)
		}
		if n := total(t, s, "u"); n != token.MaxCount {
			t.Errorf("total after refused creates = %d, want %d", n, token.MaxCount)
		}
	}},

	{name: "a create with a malformed key stores nothing", run: func(t *testing.T, s Stores) {
		toks := mustTokens(t, "u", spec("bad", 2))
		toks[1].Key = toks[1].Key[:len(toks[1].Key)-1] + "!"
		if _, err := s.Tokens.Create(context.Background(), "u", toks); err == nil {
			t.Fatal("Create with a malformed key: got nil error")
		}
		if n := total(t, s, "u"); n != 0 {
			t.Errorf("total = %d, want 0", n)
		}
		wantLookup(t, s, "the good key of the refused create", toks[0].Key, now, "", 0, false)
	}},

	{name: "another user's tokens are not found and do not change", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		mine := create(t, s, "owner", "mine", 2)

		_, err := s.Tokens.Get(ctx, "intruder", mine[0].ID)
		wantCode(t, "Get", err, token.ENotFound)
		_, err = s.Tokens.Update(ctx, "intruder", mine[0].ID, token.Patch{Name: ptr("stolen"), Status: ptr(token.StatusDisabled)}, now)
		wantCode(t, "Update", err, token.ENotFound)
		_, err = s.Tokens.Update(ctx, "intruder", mine[0].ID, token.Patch{Status: ptr(token.StatusEnabled)}, now)
		wantCode(t, "enabling Update", err, token.ENotFound)
		wantCode(t, "Delete", s.Tokens.Delete(ctx, "intruder", mine[0].ID), token.ENotFound)
		if n, err := s.Tokens.DeleteMany(ctx, "intruder", ids(mine)); err != nil || n != 0 {
			t.Fatalf("DeleteMany = %d, %v; want 0, nil", n, err)
		}
		found, err := s.Tokens.Search(ctx, "intruder", token.SearchQuery{Key: mine[0].Key}, 100)
		if err != nil || len(found) != 0 {
			t.Errorf("Search by the owner's key = %v, %v; want nothing", ids(found), err)
		}
		found, err = s.Tokens.Search(ctx, "intruder", token.SearchQuery{Keyword: "mine"}, 100)
		if err != nil || len(found) != 0 {
			t.Errorf("Search by the owner's name = %v, %v; want nothing", ids(found), err)
		}
		// The intruder has a token of their own, so ids overlap.
		own := create(t, s, "intruder", "theirs", 1)[0]
		_, err = s.Keys.RevealKey(ctx, "intruder", mine[1].ID, 100, now)
		wantCode(t, "RevealKey", err, token.ENotFound)
		revealed, err := s.Keys.RevealKeys(ctx, "intruder", ids(mine), 100, now)
		if err != nil || len(revealed) != 1 || revealed[0].ID != own.ID || revealed[0].Key != own.Key {
			t.Errorf("RevealKeys = %v, %v; want only the intruder's own token %d", ids(revealed), err, own.ID)
		}
		_, err = s.Keys.Rotate(ctx, "intruder", mine[1].ID, mustKey(t), 0, now)
		wantCode(t, "Rotate", err, token.ENotFound)

		for _, m := range mine {
			got, err := s.Tokens.Get(ctx, "owner", m.ID)
			if err != nil {
				t.Fatalf("Get(%d): %v", m.ID, err)
			}
			if !reflect.DeepEqual(got, masked(m)) {
				t.Errorf("token %d changed: %+v, want %+v", m.ID, got, masked(m))
			}
			wantLookup(t, s, "owner's key", m.Key, now, "owner", m.ID, true)
		}
		if n := total(t, s, "owner"); n != 2 {
			t.Errorf("owner's total = %d, want 2", n)
		}
	}},

	{name: "list pages newest first with the total", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		create(t, s, "u", "a", 25)
		tests := []struct {
			name       string
			page, size int
			want       []int64
		}{
			{"page 1", 1, 10, seq(25, -1, 10)},
			{"page 2", 2, 10, seq(15, -1, 10)},
			{"last page", 3, 10, seq(5, -1, 5)},
			{"beyond the end", 4, 10, []int64{}},
			{"far beyond the end", 100, 10, []int64{}},
			{"whole list", 1, 100, seq(25, -1, 25)},
			{"page size 1", 7, 1, []int64{19}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				page, err := s.Tokens.List(ctx, "u", tt.page, tt.size)
				if err != nil {
					t.Fatalf("List: %v", err)
				}
				if page.Total != 25 || page.Items == nil || !slices.Equal(ids(page.Items), tt.want) {
					t.Errorf("List(%d, %d) = total %d ids %v, want 25 %v", tt.page, tt.size, page.Total, ids(page.Items), tt.want)
				}
				for _, it := range page.Items {
					if it.Key != "" || it.KeyMask == "" {
						t.Errorf("token %d: Key %q KeyMask %q, want only the mask", it.ID, it.Key, it.KeyMask)
					}
				}
			})
		}
		t.Run("user without tokens", func(t *testing.T) {
			page, err := s.Tokens.List(ctx, "empty", 1, 10)
			if err != nil || page.Total != 0 || page.Items == nil || len(page.Items) != 0 {
				t.Errorf("List = %+v, %v; want total 0 and an empty list", page, err)
			}
		})
		t.Run("invalid page", func(t *testing.T) {
			for _, ps := range [][2]int{{0, 10}, {1, 0}, {-1, 10}} {
				_, err := s.Tokens.List(ctx, "u", ps[0], ps[1])
				wantCode(t, fmt.Sprintf("List(%d, %d)", ps[0], ps[1]), err, token.EInvalidRequest)
			}
		})
	}},

	{name: "search by keyword, whole key and fragment", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		var all []token.Token
		for _, name := range []string{"Alpha API", "beta", "gamma api", "Delta"} {
			all = append(all, create(t, s, "u", name, 1)...)
		}
		theirs := create(t, s, "other", "Alpha API", 1)[0]
		// Ids of the tokens whose full key shows fragment among its visible
		// characters (the 4 after sk- and the last 4), newest first:
		// computed from the full keys, independently of the store's matching.
		byFragment := func(fragment string) []int64 {
			out := []int64{}
			for i := len(all) - 1; i >= 0; i-- {
				k := all[i].Key
				if strings.Contains(k[3:7], fragment) || strings.Contains(k[len(k)-4:], fragment) {
					out = append(out, all[i].ID)
				}
			}
			return out
		}
		beta := all[1]
		head := strings.TrimPrefix(beta.Key, "sk-")[:4]
		tail := beta.Key[len(beta.Key)-3:]
		if got := byFragment(head[1:3]); !slices.Contains(got, beta.ID) {
			t.Fatalf("fragment %q does not select beta: test is broken", head[1:3])
		}

		tests := []struct {
			name  string
			q     token.SearchQuery
			limit int
			want  []int64
		}{
			{"everything", token.SearchQuery{}, 100, []int64{4, 3, 2, 1}},
			{"limit", token.SearchQuery{}, 2, []int64{4, 3}},
			{"keyword any case", token.SearchQuery{Keyword: "API"}, 100, []int64{3, 1}},
			{"keyword lower", token.SearchQuery{Keyword: "alpha"}, 100, []int64{1}},
			{"keyword no match", token.SearchQuery{Keyword: "zeta"}, 100, []int64{}},
			{"head fragment", token.SearchQuery{Key: head[1:3]}, 100, byFragment(head[1:3])},
			{"sk- prefix fragment", token.SearchQuery{Key: "sk-" + head[:3]}, 100, byFragment(head[:3])},
			{"masked key as listed", token.SearchQuery{Key: beta.KeyMask}, 100, []int64{beta.ID}},
			{"tail fragment", token.SearchQuery{Key: tail}, 100, byFragment(tail)},
			{"exact key", token.SearchQuery{Key: beta.Key}, 100, []int64{beta.ID}},
			{"exact key without sk-", token.SearchQuery{Key: strings.TrimPrefix(beta.Key, "sk-")}, 100, []int64{beta.ID}},
			{"exact key and matching keyword", token.SearchQuery{Key: beta.Key, Keyword: "BET"}, 100, []int64{beta.ID}},
			{"exact key and other keyword", token.SearchQuery{Key: beta.Key, Keyword: "alpha"}, 100, []int64{}},
			{"another user's exact key", token.SearchQuery{Key: theirs.Key}, 100, []int64{}},
			{"hidden middle of the key", token.SearchQuery{Key: beta.Key[10:20]}, 100, []int64{}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.Tokens.Search(ctx, "u", tt.q, tt.limit)
				if err != nil {
					t.Fatalf("Search: %v", err)
				}
				if got == nil || !slices.Equal(ids(got), tt.want) {
					t.Errorf("Search(%+v) = %v, want %v", tt.q, ids(got), tt.want)
				}
				for _, it := range got {
					if it.Key != "" {
						t.Errorf("token %d has its full key", it.ID)
					}
				}
			})
		}
		t.Run("invalid limit", func(t *testing.T) {
			_, err := s.Tokens.Search(ctx, "u", token.SearchQuery{}, 0)
			wantCode(t, "Search with limit 0", err, token.EInvalidRequest)
		})
	}},

	{name: "update applies the patch and the enable rules", run: func(t *testing.T, s Stores) {
		past := now.Add(-time.Hour).Unix()
		future := now.Add(time.Hour).Unix()
		type stored struct {
			status    token.Status
			expired   int64
			remain    int64
			unlimited bool
		}
		active := stored{token.StatusEnabled, token.NeverExpires, 100, false}
		tests := []struct {
			name      string
			stored    stored
			patch     token.Patch
			wantCode  string
			wantEff   token.Status // effective status after a successful update
			wantPatch bool         // the result must equal the stored token with the patch applied
		}{
			{name: "name only", stored: active, patch: token.Patch{Name: ptr("new name")}, wantEff: token.StatusEnabled, wantPatch: true},
			{name: "every field", stored: active, patch: token.Patch{
				Name: ptr("all"), ExpiredTime: ptr(future), RemainQuota: ptr(int64(5)), UnlimitedQuota: ptr(true),
				ModelLimitsEnabled: ptr(false), ModelLimits: ptr([]string{}), AllowIPs: ptr([]string{"1.2.3.4"}),
				Group: ptr(""), Status: ptr(token.StatusDisabled), RPMLimit: ptr(int64(0)),
			}, wantEff: token.StatusDisabled, wantPatch: true},
			{name: "disable", stored: active, patch: token.Patch{Status: ptr(token.StatusDisabled)}, wantEff: token.StatusDisabled, wantPatch: true},
			{name: "enable expired", stored: stored{token.StatusDisabled, past, 100, false},
				patch: token.Patch{Status: ptr(token.StatusEnabled)}, wantCode: token.ETokenExpired},
			{name: "enable exhausted", stored: stored{token.StatusDisabled, token.NeverExpires, 0, false},
				patch: token.Patch{Status: ptr(token.StatusEnabled)}, wantCode: token.ETokenExhausted},
			{name: "enable expired and exhausted", stored: stored{token.StatusDisabled, past, 0, false},
				patch: token.Patch{Status: ptr(token.StatusEnabled)}, wantCode: token.ETokenExpired},
			{name: "enable with a past expiry", stored: stored{token.StatusDisabled, token.NeverExpires, 100, false},
				patch: token.Patch{Status: ptr(token.StatusEnabled), ExpiredTime: ptr(past)}, wantCode: token.ETokenExpired},
			{name: "enable exhausted with quota still zero", stored: stored{token.StatusDisabled, token.NeverExpires, 0, false},
				patch: token.Patch{Status: ptr(token.StatusEnabled), RemainQuota: ptr(int64(0))}, wantCode: token.ETokenExhausted},
			{name: "enable limited without quota (decided)", stored: stored{token.StatusDisabled, token.NeverExpires, 100, true},
				patch: token.Patch{Status: ptr(token.StatusEnabled), UnlimitedQuota: ptr(false), RemainQuota: ptr(int64(0))}, wantCode: token.ETokenExhausted},
			{name: "enable limited without quota, expiry given (decided)", stored: stored{token.StatusDisabled, past, 100, true},
				patch: token.Patch{Status: ptr(token.StatusEnabled), UnlimitedQuota: ptr(false), RemainQuota: ptr(int64(0)), ExpiredTime: ptr(future)}, wantCode: token.ETokenExhausted},
			{name: "enable limited without quota on expired token", stored: stored{token.StatusDisabled, past, 100, true},
				patch: token.Patch{Status: ptr(token.StatusEnabled), UnlimitedQuota: ptr(false), RemainQuota: ptr(int64(0))}, wantCode: token.ETokenExpired},
			{name: "enable limited with stored zero quota", stored: stored{token.StatusDisabled, token.NeverExpires, 0, true},
				patch: token.Patch{Status: ptr(token.StatusEnabled), UnlimitedQuota: ptr(false)}, wantCode: token.ETokenExhausted},
			{name: "enable with the quota set to zero", stored: stored{token.StatusDisabled, token.NeverExpires, 100, false},
				patch: token.Patch{Status: ptr(token.StatusEnabled), RemainQuota: ptr(int64(0))}, wantCode: token.ETokenExhausted},
			{name: "enable expired with new expiry", stored: stored{token.StatusDisabled, past, 100, false},
				patch: token.Patch{Status: ptr(token.StatusEnabled), ExpiredTime: ptr(future)}, wantEff: token.StatusEnabled, wantPatch: true},
			{name: "enable expired never expires", stored: stored{token.StatusDisabled, past, 100, false},
				patch: token.Patch{Status: ptr(token.StatusEnabled), ExpiredTime: ptr(int64(token.NeverExpires))}, wantEff: token.StatusEnabled, wantPatch: true},
			{name: "enable exhausted with quota", stored: stored{token.StatusDisabled, token.NeverExpires, 0, false},
				patch: token.Patch{Status: ptr(token.StatusEnabled), RemainQuota: ptr(int64(10))}, wantEff: token.StatusEnabled, wantPatch: true},
			{name: "enable exhausted unlimited", stored: stored{token.StatusDisabled, token.NeverExpires, 0, false},
				patch: token.Patch{Status: ptr(token.StatusEnabled), UnlimitedQuota: ptr(true)}, wantEff: token.StatusEnabled, wantPatch: true},
			{name: "enable unlimited with zero quota", stored: stored{token.StatusDisabled, token.NeverExpires, 0, true},
				patch: token.Patch{Status: ptr(token.StatusEnabled)}, wantEff: token.StatusEnabled, wantPatch: true},
			{name: "enable an enabled token", stored: active,
				patch: token.Patch{Status: ptr(token.StatusEnabled)}, wantEff: token.StatusEnabled, wantPatch: true},
			{name: "raise expiry of an enabled expired token", stored: stored{token.StatusEnabled, past, 100, false},
				patch: token.Patch{ExpiredTime: ptr(future)}, wantEff: token.StatusEnabled, wantPatch: true},
			{name: "raise quota of an enabled exhausted token", stored: stored{token.StatusEnabled, token.NeverExpires, 0, false},
				patch: token.Patch{RemainQuota: ptr(int64(1))}, wantEff: token.StatusEnabled, wantPatch: true},
			{name: "zero quota without enabling", stored: active,
				patch: token.Patch{RemainQuota: ptr(int64(0))}, wantEff: token.StatusExhausted, wantPatch: true},
			{name: "disable an expired token", stored: stored{token.StatusEnabled, past, 100, false},
				patch: token.Patch{Status: ptr(token.StatusDisabled)}, wantEff: token.StatusExpired, wantPatch: true},
			{name: "empty patch", stored: active, patch: token.Patch{}, wantEff: token.StatusEnabled, wantPatch: true},
		}
		ctx := context.Background()
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				user := fmt.Sprintf("user%d", i)
				toks := mustTokens(t, user, spec("tok", 1))
				toks[0].Status, toks[0].ExpiredTime = tt.stored.status, tt.stored.expired
				toks[0].RemainQuota, toks[0].UnlimitedQuota = tt.stored.remain, tt.stored.unlimited
				before := masked(mustCreate(t, s.Tokens, user, toks)[0])

				got, err := s.Tokens.Update(ctx, user, before.ID, tt.patch, now)
				wantCode(t, "Update", err, tt.wantCode)
				after, gerr := s.Tokens.Get(ctx, user, before.ID)
				if gerr != nil {
					t.Fatalf("Get: %v", gerr)
				}
				if tt.wantCode != "" {
					if !reflect.DeepEqual(after, before) {
						t.Errorf("refused update changed the token:\n got %+v\nwant %+v", after, before)
					}
					return
				}
				want := tt.patch.Apply(before)
				if want.ModelLimits != nil && len(want.ModelLimits) == 0 {
					want.ModelLimits = nil // reads give nil for an empty list
				}
				if tt.wantPatch && !reflect.DeepEqual(got, want) {
					t.Errorf("Update returned\n %+v\nwant %+v", got, want)
				}
				if !reflect.DeepEqual(after, got) {
					t.Errorf("Get after Update = %+v, want what Update returned %+v", after, got)
				}
				if eff := got.EffectiveStatus(now); eff != tt.wantEff {
					t.Errorf("EffectiveStatus = %d, want %d", eff, tt.wantEff)
				}
			})
		}
		t.Run("missing id", func(t *testing.T) {
			patches := []token.Patch{
				{Name: ptr("x")},
				{Status: ptr(token.StatusEnabled)},
				{Status: ptr(token.StatusEnabled), UnlimitedQuota: ptr(false), RemainQuota: ptr(int64(0))},
				{Status: ptr(token.StatusEnabled), UnlimitedQuota: ptr(false), RemainQuota: ptr(int64(0)), ExpiredTime: ptr(future)},
				{Status: ptr(token.StatusEnabled), ExpiredTime: ptr(past)},
				{},
			}
			for _, p := range patches {
				_, err := s.Tokens.Update(ctx, "nobody", 42, p, now)
				wantCode(t, fmt.Sprintf("Update(%+v)", p), err, token.ENotFound)
			}
		})
	}},

	{name: "delete removes the token and its key", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		toks := create(t, s, "u", "d", 2)
		if err := s.Tokens.Delete(ctx, "u", toks[1].ID); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		_, err := s.Tokens.Get(ctx, "u", toks[1].ID)
		wantCode(t, "Get after Delete", err, token.ENotFound)
		wantCode(t, "second Delete", s.Tokens.Delete(ctx, "u", toks[1].ID), token.ENotFound)
		wantLookup(t, s, "deleted key", toks[1].Key, now, "", 0, false)
		wantLookup(t, s, "kept key", toks[0].Key, now, "u", toks[0].ID, true)
		page, err := s.Tokens.List(ctx, "u", 1, 10)
		if err != nil || page.Total != 1 || !slices.Equal(ids(page.Items), []int64{toks[0].ID}) {
			t.Errorf("List after Delete = %+v, %v; want token %d alone", page, err, toks[0].ID)
		}
	}},

	{name: "delete many counts what it removed", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		toks := create(t, s, "u", "m", 5)
		theirs := create(t, s, "other", "o", 1)[0]
		tests := []struct {
			name string
			ids  []int64
			want int
		}{
			{"duplicates and an unknown id", []int64{1, 1, 2, 99}, 2},
			{"already deleted", []int64{1, 2}, 0},
			{"the rest", []int64{5, 4, 3}, 3},
		}
		for _, tt := range tests {
			n, err := s.Tokens.DeleteMany(ctx, "u", tt.ids)
			if err != nil || n != tt.want {
				t.Errorf("%s: DeleteMany(%v) = %d, %v; want %d", tt.name, tt.ids, n, err, tt.want)
			}
		}
		if n := total(t, s, "u"); n != 0 {
			t.Errorf("total = %d, want 0", n)
		}
		for _, tok := range toks {
			wantLookup(t, s, "deleted key", tok.Key, now, "", 0, false)
		}
		wantLookup(t, s, "another user's key", theirs.Key, now, "other", theirs.ID, true)
		for _, bad := range []struct {
			name string
			ids  []int64
		}{
			{"empty", nil},
			{"zero id", []int64{1, 0}},
			{"negative id", []int64{-1}},
			{"too many", seq(1, 1, token.MaxBatchIDs+1)},
		} {
			_, err := s.Tokens.DeleteMany(ctx, "other", bad.ids)
			wantCode(t, "DeleteMany "+bad.name, err, token.EInvalidRequest)
		}
		if n := total(t, s, "other"); n != 1 {
			t.Errorf("other's total after refused batches = %d, want 1", n)
		}
	}},

	{name: "concurrent creates keep the limit and the ids exact", limit: 15, run: func(t *testing.T, s Stores) {
		const limit, callers = 15, 20
		errs := make([]error, callers)
		results := make([][]token.Token, callers)
		var wg sync.WaitGroup
		for i := range callers {
			toks := mustTokens(t, "busy", spec(fmt.Sprintf("t%d", i), 1))
			wg.Go(func() { results[i], errs[i] = s.Tokens.Create(context.Background(), "busy", toks) })
		}
		wg.Wait()
		var ok, limited int
		var got []int64
		for i, err := range errs {
			switch token.ErrorCode(err) {
			case "":
				ok++
				got = append(got, results[i][0].ID)
			case token.ETokenLimit:
				limited++
			default:
				t.Errorf("caller %d: %v", i, err)
			}
		}
		if ok != limit || limited != callers-limit {
			t.Fatalf("%d created, %d limited; want %d and %d", ok, limited, limit, callers-limit)
		}
		slices.Sort(got)
		if want := seq(1, 1, limit); !slices.Equal(got, want) {
			t.Errorf("ids = %v, want %v", got, want)
		}
		if n := total(t, s, "busy"); n != limit {
			t.Errorf("total = %d, want %d", n, limit)
		}
	}},

	{name: "concurrent overlapping batch deletes count each token once", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		create(t, s, "u", "a", 40)
		sets := [][]int64{
			seq(1, 1, 30),         // 1..30
			seq(20, 1, 21),        // 20..40
			seq(2, 2, 15),         // evens 2..30
			{40, 39, 1, 1, 38, 7}, // duplicates are ignored
			seq(100, 1, 5),        // never existed
		}
		unique := map[int64]bool{}
		for _, set := range sets {
			for _, id := range set {
				if id <= 40 {
					unique[id] = true
				}
			}
		}
		counts := make([]int, len(sets))
		errs := make([]error, len(sets))
		var wg sync.WaitGroup
		for i, set := range sets {
			wg.Go(func() { counts[i], errs[i] = s.Tokens.DeleteMany(ctx, "u", set) })
		}
		wg.Wait()
		sum := 0
		for i, err := range errs {
			if err != nil {
				t.Fatalf("DeleteMany %d: %v", i, err)
			}
			sum += counts[i]
		}
		if sum != len(unique) {
			t.Errorf("deleted counts %v add up to %d, want %d", counts, sum, len(unique))
		}
		page, err := s.Tokens.List(ctx, "u", 1, 100)
		if want := 40 - len(unique); err != nil || page.Total != want || len(page.Items) != want {
			t.Errorf("List = total %d (%d items), %v; want %d", page.Total, len(page.Items), err, want)
		}
	}},
}
