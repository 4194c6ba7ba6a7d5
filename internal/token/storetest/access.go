package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/llmgw/token-service/internal/auth"
)

// accessCases hold auth.Store and the user flag to their contract.
var accessCases = []testCase{
	{name: "access tokens are put, looked up and revoked", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		const hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		p := auth.Principal{UserID: "alice", Role: auth.RoleAdmin}
		if err := s.Access.PutAccessToken(ctx, hash, p); err != nil {
			t.Fatalf("PutAccessToken: %v", err)
		}
		if err := s.Access.PutAccessToken(ctx, hash, auth.Principal{UserID: "mallory", Role: auth.RoleAdmin}); err == nil {
			t.Error("PutAccessToken over an existing hash: got nil error")
		}
		got, err := s.Access.LookupAccessToken(ctx, hash)
		if err != nil || got != p {
			t.Fatalf("LookupAccessToken = %+v, %v; want %+v", got, err, p)
		}
		for _, unknown := range []string{strings.Repeat("f", 64), ""} {
			if _, err := s.Access.LookupAccessToken(ctx, unknown); !errors.Is(err, auth.ErrUnknown) {
				t.Errorf("LookupAccessToken(%q) error = %v, want ErrUnknown", unknown, err)
			}
		}
		if err := s.Access.RevokeAccessToken(ctx, hash); err != nil {
			t.Fatalf("RevokeAccessToken: %v", err)
		}
		if _, err := s.Access.LookupAccessToken(ctx, hash); !errors.Is(err, auth.ErrUnknown) {
			t.Errorf("LookupAccessToken after revoke error = %v, want ErrUnknown", err)
		}
		for _, h := range []string{hash, ""} {
			if err := s.Access.RevokeAccessToken(ctx, h); err != nil {
				t.Errorf("RevokeAccessToken(%q) of nothing: %v", h, err)
			}
		}
		tests := []struct {
			name string
			hash string
			p    auth.Principal
		}{
			{"bad user id", strings.Repeat("a", 64), auth.Principal{UserID: "a#b", Role: auth.RoleUser}},
			{"empty user id", strings.Repeat("a", 64), auth.Principal{Role: auth.RoleUser}},
			{"unknown role", strings.Repeat("a", 64), auth.Principal{UserID: "bob", Role: "root"}},
			{"empty hash", "", auth.Principal{UserID: "bob", Role: auth.RoleUser}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := s.Access.PutAccessToken(ctx, tt.hash, tt.p); err == nil {
					t.Error("PutAccessToken: got nil error")
				}
				if _, err := s.Access.LookupAccessToken(ctx, tt.hash); !errors.Is(err, auth.ErrUnknown) {
					t.Errorf("LookupAccessToken after a refused put: %v, want ErrUnknown", err)
				}
			})
		}
	}},

	{name: "a disabled user's access tokens are refused", run: func(t *testing.T, s Stores) {
		ctx := context.Background()
		mine := auth.Principal{UserID: "42", Role: auth.RoleUser}
		theirs := auth.Principal{UserID: "43", Role: auth.RoleAdmin}
		const mineHash, theirHash = "aa", "bb"
		for hash, p := range map[string]auth.Principal{mineHash: mine, theirHash: theirs} {
			if err := s.Access.PutAccessToken(ctx, hash, p); err != nil {
				t.Fatal(err)
			}
		}
		steps := []struct {
			name     string
			disabled bool
			wantErr  error
		}{
			{"disabled", true, auth.ErrDisabled},
			{"disabled twice", true, auth.ErrDisabled},
			{"enabled again", false, nil},
		}
		for _, st := range steps {
			if err := s.Users.SetUserDisabled(ctx, "42", st.disabled); err != nil {
				t.Fatalf("%s: SetUserDisabled: %v", st.name, err)
			}
			got, err := s.Access.LookupAccessToken(ctx, mineHash)
			if !errors.Is(err, st.wantErr) || (err == nil && got != mine) {
				t.Errorf("%s: user 42: %+v, %v; want %v", st.name, got, err, st.wantErr)
			}
			if got, err := s.Access.LookupAccessToken(ctx, theirHash); err != nil || got != theirs {
				t.Errorf("%s: user 43: %+v, %v; want %+v", st.name, got, err, theirs)
			}
		}
		if err := s.Users.SetUserDisabled(ctx, "a#b", true); err == nil {
			t.Error("SetUserDisabled of a bad user id: got nil error")
		}
	}},
}
