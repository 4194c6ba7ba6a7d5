// Package api holds everything HTTP that the token functions share: the
// response envelope, the one table from error codes to HTTP statuses, the
// language of the answer's message (package message: Chinese by default,
// English for Accept-Language: en), request decoding and validation of
// shapes, the caller's identity from the Lambda authorizer's verdict, one
// http.Handler per endpoint, and Start, the Lambda loop of an HTTP function.
//
// Handlers run behind API Gateway through the httpadapter V2 (see Lambda): the
// caller's user id is read only from the request context the adapter fills
// from the event (requestContext.authorizer.lambda.userId), never from a
// header, the query or the body.
package api
