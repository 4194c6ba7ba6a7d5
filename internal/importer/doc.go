// Package importer copies the tokens, and optionally the users' access
// tokens, of a new-api or one-api deployment into the table (cmd/admin
// import; README "Migrating from new-api or one-api"). It has three parts:
//
//   - the source (source.go, read.go): a database/sql connection to the
//     deployment's SQLite file, MySQL/MariaDB or PostgreSQL database, and a
//     reader of both projects' users and tokens tables (new-api's
//     model_limits/allow_ips/group/deleted_at, one-api's models/subnet and
//     user status 3), which reads rows as they are, NULLs included;
//   - the rules (rules.go): what each source row becomes here, or why it is
//     skipped or refused, decided from the row alone;
//   - the writer: dynamo.Importer, which decides ids against what the
//     table holds and writes each user's tokens in transactions with the
//     user's meta item and import record (exact counts, restartable,
//     idempotent).
//
// Run streams the tokens ordered by user and hands each user to one of a
// few parallel writers. The database drivers are linked by cmd/admin only:
// no Lambda function imports this package (tools/fence checks it).
package importer
