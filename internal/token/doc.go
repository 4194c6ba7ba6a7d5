// Package token is the domain of the token service: the Token type, every
// validation rule of the API contract, key generation, checksums and masking,
// the derived statuses (expired, exhausted), the rules of verify (its
// request, its checks, its state), and the interfaces of the store its
// users need: Store (the HTTP handlers), KeyStore (reveal and rotate) and
// Ledger (verify), which the DynamoDB store satisfies part by part.
//
// The package knows nothing of HTTP, Lambda or DynamoDB. Failures it reports are
// *Error values with a stable Code; the api package maps codes to HTTP statuses,
// and package message to the user-facing messages.
package token
