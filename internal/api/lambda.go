package api

import (
	"context"
	"net/http"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/awslabs/aws-lambda-go-api-proxy/core"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/internal/token"
)

// Start runs the Lambda loop of an HTTP API function serving h, through
// LambdaHandler. It does not return.
func Start(h http.Handler) {
	lambda.Start(LambdaHandler(h))
}

// LambdaHandler is the Lambda handler of an HTTP function: it turns an API
// Gateway HTTP API payload 2.0 event into a request for h with
// httpadapter.NewV2(h).ProxyWithContext, which keeps the event's request
// context (the authorizer verdict) in the request's context, where a client
// cannot reach it. It also keeps the event's path parameters there, since the
// adapter does not.
func LambdaHandler(h http.Handler) func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	adapter := httpadapter.NewV2(h)
	return func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		ctx = context.WithValue(ctx, pathParamsKey{}, ev.PathParameters)
		return adapter.ProxyWithContext(ctx, ev)
	}
}

type pathParamsKey struct{}

// PathParam returns the event's path parameter name, or "" when the event
// carries none of that name. It never reads the path itself: the route's
// last segment is not always the parameter (/api/token/{id}/key).
func PathParam(r *http.Request, name string) string {
	params, _ := r.Context().Value(pathParamsKey{}).(map[string]string)
	return params[name]
}

// PathID parses the {id} path parameter: token.ParseID, else invalid_id (a
// missing one included).
func PathID(r *http.Request) (int64, error) {
	return token.ParseID(PathParam(r, "id"))
}

// UserID returns the caller's user id from the authorizer verdict the event
// carried (requestContext.authorizer.lambda.userId), or an unauthorized
// error. It never reads a header: the adapter's X-GoLambdaProxy-ApiGw-Context
// header can be sent by anyone.
func UserID(r *http.Request) (string, error) {
	rc, ok := core.GetAPIGatewayV2ContextFromContext(r.Context())
	if !ok || rc.Authorizer == nil {
		return "", &token.Error{Code: token.EUnauthorized}
	}
	uid, _ := rc.Authorizer.Lambda["userId"].(string)
	if auth.CheckUserID(uid) != nil {
		return "", &token.Error{Code: token.EUnauthorized}
	}
	return uid, nil
}

// RequestID returns API Gateway's request id, or "".
func RequestID(r *http.Request) string {
	if rc, ok := core.GetAPIGatewayV2ContextFromContext(r.Context()); ok {
		return rc.RequestID
	}
	return ""
}
