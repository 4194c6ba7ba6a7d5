//go:build linux

// Package importtest holds the import's tests against real databases and
// the real stack: the fixtures of internal/importer/importtest loaded into
// MariaDB and PostgreSQL servers started from Debian's packages
// (tools/dbserver, one of each per test binary), imported into DynamoDB
// Local, and the imported keys and access tokens used over the local
// runner's HTTP API and Lambda Invoke API, with AcceptLegacyKeys and
// AcceptLegacyAccessTokens on and off.
package importtest
