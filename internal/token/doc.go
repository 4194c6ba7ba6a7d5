// Package token is the domain of the token service: the Token type, every
// validation rule of the API contract, key generation, checksums and masking,
// the derived statuses (expired, exhausted), and the Store interface that the
// DynamoDB implementation satisfies.
//
// The package knows nothing of HTTP, Lambda or DynamoDB. Failures it reports are
// *Error values with a stable Code; the api package maps codes to HTTP statuses
// and to the user-facing messages of its catalog.
package token
