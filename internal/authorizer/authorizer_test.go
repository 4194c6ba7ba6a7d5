package authorizer_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/internal/authorizer"
	"github.com/llmgw/token-service/internal/token/memstore"
)

// countingStore counts the lookups that reach the store, and its other
// calls.
type countingStore struct {
	auth.Store
	lookups, others atomic.Int64
}

func (c *countingStore) LookupAccessToken(ctx context.Context, hash string) (auth.Principal, error) {
	c.lookups.Add(1)
	return c.Store.LookupAccessToken(ctx, hash)
}

func (c *countingStore) PutAccessToken(ctx context.Context, hash string, p auth.Principal) error {
	c.others.Add(1)
	return c.Store.PutAccessToken(ctx, hash, p)
}

func (c *countingStore) RevokeAccessToken(ctx context.Context, hash string) error {
	c.others.Add(1)
	return c.Store.RevokeAccessToken(ctx, hash)
}

// mustStore returns an empty in-memory store, which the contract suite
// (internal/token/storetest) holds to the DynamoDB store's behaviour. What
// a lookup costs in DynamoDB is the store's test (internal/token/dynamo
// TestAccessTokenLookupRequests).
func mustStore(t *testing.T) *memstore.Store {
	t.Helper()
	s, err := memstore.New(memstore.Config{MaxTokensPerUser: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// brokenStore fails every call as the DynamoDB store fails on a missing
// table.
type brokenStore struct{}

var errBroken = errors.New("dynamo: operation error DynamoDB: GetItem, https response error StatusCode: 400, " +
	"ResourceNotFoundException: Cannot do operations on a non-existent table")

func (brokenStore) PutAccessToken(context.Context, string, auth.Principal) error { return errBroken }

func (brokenStore) LookupAccessToken(context.Context, string) (auth.Principal, error) {
	return auth.Principal{}, errBroken
}

func (brokenStore) RevokeAccessToken(context.Context, string) error { return errBroken }

// fixture is events/authorizer.json with its Authorization header set to
// header (or removed when header is "").
func fixture(t *testing.T, name, header string) events.APIGatewayV2CustomAuthorizerV2Request {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", "authorizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var req events.APIGatewayV2CustomAuthorizerV2Request
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	delete(req.Headers, "authorization")
	req.IdentitySource = nil
	if header != "" {
		req.Headers[name] = header
		req.IdentitySource = []string{header}
	}
	return req
}

func mustIssue(t *testing.T, s auth.Store, p auth.Principal) string {
	t.Helper()
	tok, err := auth.NewAccessToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutAccessToken(context.Background(), auth.Hash(tok), p); err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestAuthorizer(t *testing.T) {
	store := &countingStore{Store: mustStore(t)}
	good := mustIssue(t, store, auth.Principal{UserID: "events-user", Role: auth.RoleUser})
	admin := mustIssue(t, store, auth.Principal{UserID: "42", Role: auth.RoleAdmin})
	revoked := mustIssue(t, store, auth.Principal{UserID: "gone", Role: auth.RoleUser})
	if err := store.RevokeAccessToken(context.Background(), auth.Hash(revoked)); err != nil {
		t.Fatal(err)
	}
	unknown, _ := auth.NewAccessToken()
	a := authorizer.New(store)

	tests := []struct {
		name        string
		headerName  string
		header      string
		wantAllowed bool
		wantUser    string
		wantRole    string
		wantLookups int64
	}{
		{name: "missing header", headerName: "authorization", header: ""},
		{name: "wrong scheme", headerName: "authorization", header: "Basic " + good},
		{name: "no scheme", headerName: "authorization", header: good},
		{name: "malformed token", headerName: "authorization", header: "Bearer at-short"},
		{name: "api key instead", headerName: "authorization", header: "Bearer sk-" + strings.Repeat("a", 48)},
		{name: "unknown token", headerName: "authorization", header: "Bearer " + unknown, wantLookups: 1},
		{name: "revoked token", headerName: "authorization", header: "Bearer " + revoked, wantLookups: 1},
		{name: "placeholder of the fixture", headerName: "authorization", header: "Bearer at-EventsPlaceholderReplacedByTheRunner0000000", wantLookups: 1},
		{name: "good token", headerName: "authorization", header: "Bearer " + good, wantAllowed: true, wantUser: "events-user", wantRole: "user", wantLookups: 1},
		{name: "header name in any case", headerName: "AUTHORIZATION", header: "bearer " + admin, wantAllowed: true, wantUser: "42", wantRole: "admin", wantLookups: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := store.lookups.Load()
			got, err := a.Handle(context.Background(), fixture(t, tt.headerName, tt.header))
			if err != nil {
				t.Fatalf("Handle error: %v", err)
			}
			if got.IsAuthorized != tt.wantAllowed {
				t.Errorf("isAuthorized = %v, want %v", got.IsAuthorized, tt.wantAllowed)
			}
			if tt.wantAllowed {
				if got.Context["userId"] != tt.wantUser || got.Context["role"] != tt.wantRole {
					t.Errorf("context = %v, want userId %q role %q", got.Context, tt.wantUser, tt.wantRole)
				}
			} else if len(got.Context) != 0 {
				t.Errorf("refusal carries context %v", got.Context)
			}
			if n := store.lookups.Load() - before; n != tt.wantLookups {
				t.Errorf("store lookups = %d, want %d", n, tt.wantLookups)
			}
		})
	}
}

// TestAuthorizerStoreLookups counts the calls that reach the store: none
// for a header that cannot hold an access token, one lookup and nothing
// else for any other.
func TestAuthorizerStoreLookups(t *testing.T) {
	ctx := context.Background()
	s := mustStore(t)
	store := &countingStore{Store: s}
	good := mustIssue(t, store, auth.Principal{UserID: "alice", Role: auth.RoleUser})
	disabled := mustIssue(t, store, auth.Principal{UserID: "mallory", Role: auth.RoleUser})
	revoked := mustIssue(t, store, auth.Principal{UserID: "gone", Role: auth.RoleUser})
	if err := store.RevokeAccessToken(ctx, auth.Hash(revoked)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUserDisabled(ctx, "mallory", true); err != nil {
		t.Fatal(err)
	}
	unknown, _ := auth.NewAccessToken()
	a := authorizer.New(store)

	tests := []struct {
		name        string
		header      string // "" = no Authorization header
		wantAllowed bool
		wantLookups int64
	}{
		{name: "missing header"},
		{name: "empty header", header: " "},
		{name: "wrong scheme", header: "Basic " + good},
		{name: "token without scheme", header: good},
		{name: "bearer without token", header: "Bearer "},
		{name: "short token", header: "Bearer at-short"},
		{name: "long token", header: "Bearer " + good + "A"},
		{name: "wrong prefix", header: "Bearer xx" + good[2:]},
		{name: "not base64url", header: "Bearer at-" + strings.Repeat("+", 43)},
		{name: "api key instead", header: "Bearer sk-" + strings.Repeat("a", 48)},
		{name: "two tokens", header: "Bearer " + good + " " + good},
		{name: "1 MiB header", header: "Bearer " + strings.Repeat("A", 1<<20)},
		{name: "1 MiB header after a good token", header: "Bearer " + good + strings.Repeat(" ", 1<<20) + "x"},
		{name: "unknown token", header: "Bearer " + unknown, wantLookups: 1},
		{name: "revoked token", header: "Bearer " + revoked, wantLookups: 1},
		{name: "disabled user", header: "Bearer " + disabled, wantLookups: 1},
		{name: "good token", header: "Bearer " + good, wantAllowed: true, wantLookups: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookups, others := store.lookups.Load(), store.others.Load()
			got, err := a.Handle(ctx, fixture(t, "authorization", tt.header))
			if err != nil {
				t.Fatalf("Handle error: %v", err)
			}
			if got.IsAuthorized != tt.wantAllowed {
				t.Errorf("isAuthorized = %v, want %v", got.IsAuthorized, tt.wantAllowed)
			}
			if !tt.wantAllowed && len(got.Context) != 0 {
				t.Errorf("refusal carries context %v", got.Context)
			}
			lookups, others = store.lookups.Load()-lookups, store.others.Load()-others
			if lookups != tt.wantLookups || others != 0 {
				t.Errorf("store calls = %d lookups and %d others, want %d lookups and nothing else", lookups, others, tt.wantLookups)
			}
		})
	}
}

// A disabled user's access token is refused from the next request, and
// enabling the user lets it through again.
func TestAuthorizerDisabledUser(t *testing.T) {
	ctx := context.Background()
	store := mustStore(t)
	tok := mustIssue(t, store, auth.Principal{UserID: "42", Role: auth.RoleUser})
	other := mustIssue(t, store, auth.Principal{UserID: "43", Role: auth.RoleUser})
	a := authorizer.New(store)
	steps := []struct {
		name      string
		disabled  bool
		wantAllow bool
	}{
		{"before", false, true},
		{"disabled", true, false},
		{"enabled again", false, true},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := store.SetUserDisabled(ctx, "42", s.disabled); err != nil {
				t.Fatal(err)
			}
			got, err := a.Handle(ctx, fixture(t, "authorization", "Bearer "+tok))
			if err != nil {
				t.Fatal(err)
			}
			if got.IsAuthorized != s.wantAllow {
				t.Errorf("user 42: isAuthorized = %v, want %v", got.IsAuthorized, s.wantAllow)
			}
			got, err = a.Handle(ctx, fixture(t, "authorization", "Bearer "+other))
			if err != nil || !got.IsAuthorized || got.Context["userId"] != "43" {
				t.Errorf("user 43: %+v, %v; want authorized as 43", got, err)
			}
		})
	}
}

func TestAuthorizerStoreFailureIsAnError(t *testing.T) {
	a := authorizer.New(brokenStore{})
	tok, _ := auth.NewAccessToken()
	got, err := a.Handle(context.Background(), fixture(t, "authorization", "Bearer "+tok))
	if err == nil || got.IsAuthorized {
		t.Fatalf("Handle on a failing store = %+v, %v; want an error and no authorization", got, err)
	}
	if strings.Contains(err.Error(), tok) {
		t.Errorf("error holds the access token: %v", err)
	}
}
