// Package securitytest is the security test suite of the token service. It
// has no code of its own: its tests run the whole stack (template.yaml under
// the local runner, internal/stacktest) once and attack it over HTTP and the
// Lambda Invoke API: the authorization matrix (another user's ids answer
// exactly as missing ones and change nothing), mass assignment, identity
// forgery, the authorizer's refusals, disabling a user with cmd/admin, and,
// after all of it, that no full key and no access token reached a log line
// or the table.
package securitytest
