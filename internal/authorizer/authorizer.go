// Package authorizer is the Lambda REQUEST authorizer of the HTTP API
// (payload format 2.0, simple responses): it checks the bearer user access
// token of a request and tells API Gateway who the caller is.
package authorizer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/llmgw/token-service/internal/auth"
)

// Authorizer checks access tokens against an auth.Store.
type Authorizer struct {
	store        auth.Store
	acceptLegacy bool
}

// Option configures an Authorizer.
type Option func(*Authorizer)

// AcceptLegacyAccessTokens makes the authorizer accept, when accept is
// set (template parameter AcceptLegacyAccessTokens), the legacy access
// tokens cmd/admin import brings from new-api and one-api, with or without
// "Bearer " (auth.Credentials.AccessToken). Without it they are refused
// without a store call.
func AcceptLegacyAccessTokens(accept bool) Option {
	return func(a *Authorizer) { a.acceptLegacy = accept }
}

// New returns an Authorizer reading store.
func New(store auth.Store, opts ...Option) *Authorizer {
	a := &Authorizer{store: store}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Handle answers one authorization request. A missing or malformed
// Authorization header is refused without a store call; an unknown or
// revoked token is refused after one strongly consistent read, a disabled
// user's token after two (the token, then the user's meta item). A refusal
// is isAuthorized false (API Gateway answers 403); a store failure is an
// error (API Gateway answers 500). The verdict's context carries userId and
// role, which the functions read from requestContext.authorizer.lambda.
func (a *Authorizer) Handle(ctx context.Context, req events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
	deny := events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: false}
	log := slog.With("request_id", req.RequestContext.RequestID, "route", req.RouteKey)
	header, ok := headerValue(req.Headers, "Authorization")
	if !ok {
		log.InfoContext(ctx, "authorizer refused", "reason", "no authorization header")
		return deny, nil
	}
	creds, err := auth.ParseAuthorization(header)
	var tok string
	if err == nil {
		tok, err = creds.AccessToken(a.acceptLegacy)
	}
	if err != nil {
		log.InfoContext(ctx, "authorizer refused", "reason", "malformed bearer token")
		return deny, nil
	}
	p, err := a.store.LookupAccessToken(ctx, auth.Hash(tok))
	if errors.Is(err, auth.ErrUnknown) {
		log.InfoContext(ctx, "authorizer refused", "reason", "unknown or revoked access token")
		return deny, nil
	}
	if errors.Is(err, auth.ErrDisabled) {
		log.InfoContext(ctx, "authorizer refused", "reason", "user disabled")
		return deny, nil
	}
	if err != nil {
		log.ErrorContext(ctx, "authorizer lookup failed", "error", err.Error())
		return deny, fmt.Errorf("authorize: lookup access token: %w", err)
	}
	log.InfoContext(ctx, "authorizer allowed", "user_id", p.UserID, "role", p.Role)
	return events.APIGatewayV2CustomAuthorizerSimpleResponse{
		IsAuthorized: true,
		Context:      map[string]any{"userId": p.UserID, "role": p.Role},
	}, nil
}

// headerValue finds a header by case-insensitive name (API Gateway sends
// them lower-cased, other callers may not).
func headerValue(headers map[string]string, name string) (string, bool) {
	if v, ok := headers[strings.ToLower(name)]; ok {
		return v, true
	}
	for k, v := range headers {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}
