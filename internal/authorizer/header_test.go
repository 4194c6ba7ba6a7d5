package authorizer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/internal/authorizer"
	"github.com/llmgw/token-service/internal/token"
)

// TestOneReadingOfAuthorization holds the authorizer and the usage
// endpoint to the one reading of the Authorization header
// (auth.ParseAuthorization): for each shape of header, the authorizer with
// a user access token in it and the usage endpoint with a key in it
// accept, or both refuse.
func TestOneReadingOfAuthorization(t *testing.T) {
	store := mustStore(t)
	ctx := context.Background()
	access, err := auth.NewAccessToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutAccessToken(ctx, auth.Hash(access), auth.Principal{UserID: "42", Role: auth.RoleUser}); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	made, err := token.Spec{Name: "k", ExpiredTime: -1, Count: 1, UnlimitedQuota: true}.Tokens("42", now)
	if err != nil {
		t.Fatal(err)
	}
	created, err := store.Create(ctx, "42", made)
	if err != nil {
		t.Fatal(err)
	}
	key := created[0].Key
	authz := authorizer.New(store)
	usage := api.LambdaHandler(api.UsageToken(store, func() time.Time { return now }))

	tests := []struct {
		name   string
		header string // %s is the credential
		ok     bool
	}{
		{"bearer", "Bearer %s", true},
		{"lower-case scheme", "bearer %s", true},
		{"upper-case scheme", "BEARER %s", true},
		{"tab after Bearer", "Bearer\t%s", true},
		{"double space", "Bearer  %s", true},
		{"spaces and tabs around", " \tBearer %s \t", true},
		{"space and tab between", "Bearer \t %s", true},
		{"no scheme", "%s", false},
		{"other scheme", "Basic %s", false},
		{"scheme glued", "Bearer%s", false},
		{"two credentials", "Bearer %s %s", false},
		{"trailing word", "Bearer %s extra", false},
		{"scheme alone", "Bearer", false},
		{"empty", "", false},
		{"line break after Bearer", "Bearer\n%s", false},
		{"no-break space after Bearer", "Bearer\u00a0%s", false},
		{"NUL after the credential", "Bearer %s\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verdict, err := authz.Handle(ctx, authorizerRequest(fill(tt.header, access)))
			if err != nil {
				t.Fatal(err)
			}
			status := usageStatus(t, usage, fill(tt.header, key))
			if verdict.IsAuthorized != tt.ok || (status == 200) != tt.ok {
				t.Errorf("%q: authorizer allows %v, usage answers %d; want both to accept = %v", tt.header, verdict.IsAuthorized, status, tt.ok)
			}
		})
	}
}

// fill puts cred in every %s of header.
func fill(header, cred string) string {
	n := 0
	for i := 0; i+1 < len(header); i++ {
		if header[i] == '%' && header[i+1] == 's' {
			n++
		}
	}
	args := make([]any, n)
	for i := range args {
		args[i] = cred
	}
	return fmt.Sprintf(header, args...)
}

func authorizerRequest(header string) events.APIGatewayV2CustomAuthorizerV2Request {
	req := events.APIGatewayV2CustomAuthorizerV2Request{RouteKey: "GET /api/token", Headers: map[string]string{}}
	if header != "" {
		req.Headers["authorization"] = header
	}
	return req
}

func usageStatus(t *testing.T, h func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error), header string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", "usage-token.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	delete(ev.Headers, "authorization")
	if header != "" {
		ev.Headers["authorization"] = header
	}
	out, err := h(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	return out.StatusCode
}

// TestLegacyAccessTokens: imported new-api and one-api access tokens are
// accepted, with or without Bearer, only with AcceptLegacyAccessTokens;
// without it they are refused before any store call.
func TestLegacyAccessTokens(t *testing.T) {
	ctx := context.Background()
	legacy := map[string]string{
		"one-api (32 hex)":      "0123456789abcdef0123456789abcdef",
		"new-api (base64-like)": "Zm9vYmFyYmF6cXV4+/Nld0FQSQ==",
	}
	for name, tok := range legacy {
		t.Run(name, func(t *testing.T) {
			store := &countingStore{Store: mustStore(t)}
			if err := store.Store.PutAccessToken(ctx, auth.Hash(tok), auth.Principal{UserID: "7", Role: auth.RoleUser}); err != nil {
				t.Fatal(err)
			}
			for _, header := range []string{"Bearer " + tok, tok, "bearer\t" + tok + " "} {
				off, err := authorizer.New(store).Handle(ctx, authorizerRequest(header))
				if err != nil || off.IsAuthorized || store.lookups.Load() != 0 {
					t.Errorf("off, %q: allowed %v after %d lookups (%v); want refused after none", header, off.IsAuthorized, store.lookups.Load(), err)
				}
				on, err := authorizer.New(store, authorizer.AcceptLegacyAccessTokens(true)).Handle(ctx, authorizerRequest(header))
				if err != nil || !on.IsAuthorized || on.Context["userId"] != "7" {
					t.Errorf("on, %q: %+v, %v; want user 7", header, on, err)
				}
				store.lookups.Store(0)
			}
		})
	}
	store := &countingStore{Store: mustStore(t)}
	a := authorizer.New(store, authorizer.AcceptLegacyAccessTokens(true))
	for _, bad := range []string{"Bearer short", "Bearer " + "x-y_z" + "0123456789abcdef", "Basic 0123456789abcdef0123456789abcdef", "Bearer " + string(make([]byte, 65))} {
		v, err := a.Handle(ctx, authorizerRequest(bad))
		if err != nil || v.IsAuthorized || store.lookups.Load() != 0 {
			t.Errorf("%q: allowed %v after %d lookups", bad, v.IsAuthorized, store.lookups.Load())
		}
	}
}
