// Package importtest is test support for the importer: the tables of
// new-api and one-api as their gorm models declare them (model/token.go,
// model/user.go of each project), written for SQLite, MySQL/MariaDB and
// PostgreSQL as gorm would create them, and one set of rows, odd ones
// included, that every test loads into every database. Want says what
// each row must become. No Lambda function links it (tools/fence).
package importtest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Schema and Dialect mirror the importer's, as strings, so that this
// package stays free of it.
const (
	NewAPI = "new-api"
	OneAPI = "one-api"

	SQLite     = "sqlite"
	MySQL      = "mysql"
	PostgreSQL = "postgres"
)

// Now is the moment the fixtures' expiries are relative to: the tests run
// the import at it.
var Now = time.Unix(1_900_000_000, 0)

// Future and Past are expiries after and before Now.
var (
	Future = Now.Add(365 * 24 * time.Hour).Unix()
	Past   = Now.Add(-24 * time.Hour).Unix()
)

// Key returns the stored key (48 characters, no sk-, no checksum of ours)
// of the fixture row named label.
func Key(label string) string {
	sum := sha256.Sum256([]byte("importtest key " + label))
	h := hex.EncodeToString(sum[:]) // 64 of [0-9a-f]
	// Mixed case, as the projects' keys are.
	return strings.ToUpper(h[:16]) + h[16:48]
}

// User is a row of users.
type User struct {
	ID          int64
	Status      int64
	Deleted     bool   // new-api: deleted_at set
	AccessToken string // "" is NULL
}

// Token is a row of tokens; nil pointers are NULL.
type Token struct {
	ID, UserID   int64
	Label        string // names the key (Key(Label)); KeyOverride wins
	KeyOverride  *string
	Status       int64
	Name         string
	ExpiredTime  *int64
	RemainQuota  int64
	UsedQuota    int64
	Unlimited    bool
	ModelsOn     bool    // new-api model_limits_enabled
	Models       *string // new-api model_limits, one-api models
	IPs          *string // new-api allow_ips, one-api subnet
	Group        *string // new-api only
	Deleted      bool    // new-api only: deleted_at set
	CreatedTime  int64
	AccessedTime int64
	// Want is what the row must become: "imported", or "skipped: ..." /
	// "refused: ..." with the reason's start.
	Want string
}

// StoredKey is the row's key column.
func (t Token) StoredKey() string {
	if t.KeyOverride != nil {
		return *t.KeyOverride
	}
	return Key(t.Label)
}

func str(s string) *string { return &s }
func num(n int64) *int64   { return &n }

// Users and Tokens return the fixture rows of schema.
func Users(schema string) []User {
	if schema == NewAPI {
		return []User{
			{ID: 1, Status: 1, AccessToken: "Zm9vYmFyYmF6cXV4+/Nld0FQSQ=="}, // base64-like, 28 characters
			{ID: 2, Status: 2, AccessToken: "YWNjZXNzLXRva2VuLWRpc2FibGVk"},
			{ID: 3, Status: 1, Deleted: true, AccessToken: "ZGVsZXRlZC11c2VyLXRva2VuMDAw"},
			{ID: 4, Status: 1, AccessToken: "  c3BhY2VkLXRva2VuLWFyb3VuZA==  "}, // spaces around: trimmed
			{ID: 5, Status: 1, AccessToken: "short"},                            // refused: too short
		}
	}
	return []User{
		{ID: 1, Status: 1, AccessToken: "0123456789abcdef0123456789abcdef"}, // 32 hex, as one-api makes them
		{ID: 2, Status: 2, AccessToken: "fedcba9876543210fedcba9876543210"},
		{ID: 3, Status: 3, AccessToken: "deadbeefdeadbeefdeadbeefdeadbeef"}, // status 3: deleted
		{ID: 4, Status: 1},
	}
}

// Tokens returns the fixture tokens of schema.
func Tokens(schema string) []Token {
	if schema == NewAPI {
		return []Token{
			{ID: 1, UserID: 1, Label: "n1", Status: 1, Name: "main", ExpiredTime: num(Future), RemainQuota: 1000, UsedQuota: 50,
				ModelsOn: true, Models: str("gpt-4,gpt-3.5-turbo"), IPs: str("10.0.0.1\n192.168.0.0/24"), Group: str("default"), Want: "imported"},
			{ID: 2, UserID: 1, Label: "n2", Status: 2, Name: "disabled one", ExpiredTime: num(-1), RemainQuota: 10, Models: str(""), IPs: str(""), Group: str(""), Want: "imported"},
			{ID: 3, UserID: 1, Label: "n3", Status: 1, Name: "soft-deleted", ExpiredTime: num(-1), RemainQuota: 10, Deleted: true, Want: "skipped: token deleted"},
			{ID: 4, UserID: 1, Label: "n4", Status: 1, Name: "", ExpiredTime: num(-1), Unlimited: true, Want: "imported"},
			{ID: 5, UserID: 1, Label: "n5", Status: 1, Name: strings.Repeat("很长的名字", 8), ExpiredTime: num(-1), RemainQuota: 5, Want: "imported"},
			{ID: 6, UserID: 1, Label: "n6", Status: 1, Name: "nulls", ExpiredTime: num(-1), RemainQuota: 7, Models: nil, IPs: nil, Group: nil, Want: "imported"},
			{ID: 7, UserID: 1, Label: "n7", Status: 3, Name: "expired", ExpiredTime: num(Past), RemainQuota: 7, Want: "imported"},
			{ID: 8, UserID: 1, Label: "n8", Status: 4, Name: "exhausted", ExpiredTime: num(-1), RemainQuota: 0, UsedQuota: 100, Want: "imported"},
			{ID: 9, UserID: 1, Label: "n9", Status: 3, Name: "not expired any more", ExpiredTime: num(-1), RemainQuota: 7, Want: "imported"},
			{ID: 10, UserID: 1, Label: "n10", Status: 1, Name: "expiry zero", ExpiredTime: num(0), RemainQuota: 7, Want: "imported"},
			{ID: 11, UserID: 1, KeyOverride: str("0123456789abcdef0123456789abcdef"), Status: 1, Name: "short key", ExpiredTime: num(-1), Want: "refused: key of 32 characters"},
			{ID: 12, UserID: 1, Label: "n12", Status: 1, Name: "bad model", ExpiredTime: num(-1), ModelsOn: true, Models: str("gpt 4 (vision)"), Want: "refused: model limits"},
			{ID: 13, UserID: 1, Label: "n13", Status: 1, Name: "vip group", ExpiredTime: num(-1), Group: str("vip"), Want: "refused: group"},
			{ID: 14, UserID: 1, Label: "n14", Status: 1, Name: "negative quota", ExpiredTime: num(-1), RemainQuota: -5, Want: "imported"},
			{ID: 15, UserID: 1, Label: "n15", Status: 1, Name: "ip lines", ExpiredTime: num(-1), RemainQuota: 1, IPs: str(" 1.2.3.4,\n\n2001:db8::/32\n"), Want: "imported"},
			{ID: 16, UserID: 1, Label: "n16", Status: 1, Name: "\u200b\u200b", ExpiredTime: num(-1), RemainQuota: 1, Want: "imported"},
			{ID: 17, UserID: 1, Label: "n17", Status: 1, Name: "bad ip", ExpiredTime: num(-1), RemainQuota: 1, IPs: str("10.0.0.300"), Want: "refused: IP rules"},
			{ID: 20, UserID: 2, Label: "n20", Status: 1, Name: "of a disabled user", ExpiredTime: num(-1), RemainQuota: 100, Want: "imported"},
			{ID: 30, UserID: 3, Label: "n30", Status: 1, Name: "of a deleted user", ExpiredTime: num(-1), RemainQuota: 100, Want: "skipped: its user is deleted"},
			{ID: 40, UserID: 4, Label: "n40", Status: 1, Name: "user four", ExpiredTime: num(-1), RemainQuota: 100, Want: "imported"},
			{ID: 90, UserID: 99, Label: "n90", Status: 1, Name: "of a missing user", ExpiredTime: num(-1), RemainQuota: 100, Want: "skipped: its user is missing"},
		}
	}
	return []Token{
		// one-api makes a default token for every new user: remain_quota -1, unlimited.
		{ID: 1, UserID: 1, Label: "o1", Status: 1, Name: "default", ExpiredTime: num(-1), RemainQuota: -1, Unlimited: true, Models: str(""), IPs: str(""), Want: "imported"},
		{ID: 2, UserID: 1, Label: "o2", Status: 1, Name: "limited", ExpiredTime: num(Future), RemainQuota: 500, UsedQuota: 20,
			Models: str("gpt-4, claude-3-haiku"), IPs: str("10.0.0.0/8, 192.168.1.7/24"), Want: "imported"},
		{ID: 3, UserID: 1, Label: "o3", Status: 1, Name: "nulls", ExpiredTime: num(-1), RemainQuota: 3, Models: nil, IPs: nil, Want: "imported"},
		{ID: 4, UserID: 1, Label: "o4", Status: 1, Name: "bare address", ExpiredTime: num(-1), RemainQuota: 3, IPs: str("1.2.3.4"), Want: "refused: IP rules"},
		{ID: 5, UserID: 1, Label: "o5", Status: 2, Name: "disabled one", ExpiredTime: num(-1), RemainQuota: 3, Want: "imported"},
		{ID: 6, UserID: 1, Label: "o6", Status: 1, Name: "expiry zero", ExpiredTime: num(0), RemainQuota: 3, Want: "imported"},
		{ID: 7, UserID: 1, KeyOverride: str("abcdef0123456789abcdef0123456789"), Status: 1, Name: "old 32-character key", ExpiredTime: num(-1), Want: "refused: key of 32 characters"},
		{ID: 8, UserID: 1, Label: "o8", Status: 1, Name: strings.Repeat("x", 31), ExpiredTime: num(-1), RemainQuota: 3, Want: "imported"},
		{ID: 9, UserID: 1, Label: "o9", Status: 1, Name: "", ExpiredTime: num(-1), RemainQuota: 3, Want: "imported"},
		{ID: 10, UserID: 1, Label: "o10", Status: 4, Name: "exhausted", ExpiredTime: num(-1), RemainQuota: 0, UsedQuota: 9, Want: "imported"},
		{ID: 20, UserID: 2, Label: "o20", Status: 1, Name: "of a disabled user", ExpiredTime: num(-1), RemainQuota: 100, Want: "imported"},
		{ID: 30, UserID: 3, Label: "o30", Status: 1, Name: "of a deleted user", ExpiredTime: num(-1), RemainQuota: 100, Want: "skipped: its user is deleted"},
		{ID: 40, UserID: 4, Label: "o40", Status: 1, Name: "user four", ExpiredTime: num(-1), RemainQuota: 100, Want: "imported"},
	}
}

// DDL returns the CREATE statements of schema's users and tokens tables in
// dialect, with the columns, types and defaults their gorm models declare
// (indexes on the columns the models index).
func DDL(schema, dialect string) []string {
	var users, tokens []col
	if schema == NewAPI {
		users, tokens = newAPIUsers, newAPITokens
	} else {
		users, tokens = oneAPIUsers, oneAPITokens
	}
	return []string{createTable(dialect, "users", users), createTable(dialect, "tokens", tokens),
		uniqueIndex(dialect, "tokens", "key"), uniqueIndex(dialect, "users", "access_token")}
}

// col is a column: its name, its kind (gorm's mapping to each dialect) and
// its default.
type col struct {
	name, kind, def string
}

// The gorm kinds used: id (autoincrement primary key), int, bigint, bool,
// text, str (an indexed or sized string: varchar(n) / char(n)), time.
var newAPITokens = []col{
	{"id", "id", ""}, {"user_id", "bigint", ""}, {"key", "varchar(128)", ""}, {"status", "bigint", "1"},
	{"name", "varchar(191)", ""}, {"created_time", "bigint", ""}, {"accessed_time", "bigint", ""},
	{"expired_time", "bigint", "-1"}, {"remain_quota", "bigint", "0"}, {"unlimited_quota", "bool", ""},
	{"model_limits_enabled", "bool", ""}, {"model_limits", "text", ""}, {"allow_ips", "text", "''"},
	{"used_quota", "bigint", "0"}, {"group", "text", "''"}, {"cross_group_retry", "bool", ""},
	{"billing_type", "bigint", "0"}, {"deleted_at", "time", ""},
}

var newAPIUsers = []col{
	{"id", "id", ""}, {"username", "varchar(191)", ""}, {"password", "text not null", ""}, {"display_name", "varchar(191)", ""},
	{"role", "int", "1"}, {"status", "int", "1"}, {"email", "varchar(191)", ""}, {"github_id", "varchar(191)", ""},
	{"access_token", "char(32)", ""}, {"quota", "int", "0"}, {"used_quota", "int", "0"}, {"request_count", "int", "0"},
	{"group", "varchar(64)", "'default'"}, {"aff_code", "varchar(32)", ""}, {"inviter_id", "int", ""},
	{"deleted_at", "time", ""}, {"setting", "text", ""}, {"created_at", "bigint", ""}, {"last_login_at", "bigint", "0"},
}

var oneAPITokens = []col{
	{"id", "id", ""}, {"user_id", "bigint", ""}, {"key", "char(48)", ""}, {"status", "bigint", "1"},
	{"name", "varchar(191)", ""}, {"created_time", "bigint", ""}, {"accessed_time", "bigint", ""},
	{"expired_time", "bigint", "-1"}, {"remain_quota", "bigint", "0"}, {"unlimited_quota", "bool", "false"},
	{"used_quota", "bigint", "0"}, {"models", "text", "''"}, {"subnet", "text", "''"},
}

var oneAPIUsers = []col{
	{"id", "id", ""}, {"username", "varchar(191)", ""}, {"password", "text not null", ""}, {"display_name", "varchar(191)", ""},
	{"role", "int", "1"}, {"status", "int", "1"}, {"email", "varchar(191)", ""}, {"github_id", "varchar(191)", ""},
	{"wechat_id", "varchar(191)", ""}, {"lark_id", "varchar(191)", ""}, {"oidc_id", "varchar(191)", ""},
	{"access_token", "char(32)", ""}, {"quota", "bigint", "0"}, {"used_quota", "bigint", "0"},
	{"request_count", "int", "0"}, {"group", "varchar(32)", "'default'"}, {"aff_code", "varchar(32)", ""}, {"inviter_id", "int", ""},
}

func quote(dialect, name string) string {
	if dialect == MySQL {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}

func sqlType(dialect, kind string) string {
	switch kind {
	case "id":
		switch dialect {
		case MySQL:
			return "bigint AUTO_INCREMENT PRIMARY KEY"
		case PostgreSQL:
			return "bigserial PRIMARY KEY"
		}
		return "integer PRIMARY KEY AUTOINCREMENT"
	case "bool":
		switch dialect {
		case MySQL:
			return "tinyint(1)"
		case PostgreSQL:
			return "boolean"
		}
		return "numeric"
	case "time":
		switch dialect {
		case MySQL:
			return "datetime(3) NULL"
		case PostgreSQL:
			return "timestamptz"
		}
		return "datetime"
	case "text":
		if dialect == MySQL {
			return "longtext"
		}
		return "text"
	case "text not null":
		if dialect == MySQL {
			return "longtext NOT NULL"
		}
		return "text NOT NULL"
	case "int", "bigint":
		if dialect == SQLite {
			return "integer"
		}
		return kind
	}
	if dialect == SQLite {
		return "text" // gorm's sqlite maps sized strings to text
	}
	return kind
}

func createTable(dialect, table string, cols []col) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		p := quote(dialect, c.name) + " " + sqlType(dialect, c.kind)
		if c.def != "" {
			def := c.def
			if c.kind == "bool" && dialect != PostgreSQL {
				def = map[string]string{"false": "0", "true": "1"}[def]
			}
			p += " DEFAULT " + def
		}
		parts[i] = p
	}
	return "CREATE TABLE " + quote(dialect, table) + " (" + strings.Join(parts, ", ") + ")"
}

func uniqueIndex(dialect, table, column string) string {
	return "CREATE UNIQUE INDEX " + quote(dialect, "idx_"+table+"_"+column) + " ON " + quote(dialect, table) + " (" + quote(dialect, column) + ")"
}

// Load creates schema's tables in db and inserts the fixture rows, plus
// extra tokens (for a user of the fixtures or a new one: users are made for
// every user id extra names).
func Load(ctx context.Context, db *sql.DB, schema, dialect string, extra ...Token) error {
	for _, stmt := range DDL(schema, dialect) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	users := Users(schema)
	known := map[int64]bool{}
	for _, u := range users {
		known[u.ID] = true
	}
	for _, t := range extra {
		if !known[t.UserID] {
			known[t.UserID] = true
			users = append(users, User{ID: t.UserID, Status: 1})
		}
	}
	if err := InsertUsers(ctx, db, schema, dialect, users); err != nil {
		return err
	}
	return InsertTokens(ctx, db, schema, dialect, append(Tokens(schema), extra...))
}

// placeholders returns n bind parameters of dialect.
func placeholders(dialect string, n, from int) string {
	p := make([]string, n)
	for i := range p {
		if dialect == PostgreSQL {
			p[i] = fmt.Sprintf("$%d", from+i+1)
		} else {
			p[i] = "?"
		}
	}
	return strings.Join(p, ", ")
}

// InsertUsers inserts users.
func InsertUsers(ctx context.Context, db *sql.DB, schema, dialect string, users []User) error {
	for _, u := range users {
		cols := []string{"id", "username", "password", "role", "status", "access_token", "aff_code"}
		args := []any{u.ID, fmt.Sprintf("user%d", u.ID), "x", 1, u.Status, nullString(u.AccessToken), fmt.Sprintf("a%d", u.ID)}
		if schema == NewAPI {
			cols = append(cols, "deleted_at")
			var deleted any
			if u.Deleted {
				deleted = Now.Add(-time.Hour).UTC()
			}
			args = append(args, deleted)
		}
		if err := insert(ctx, db, dialect, "users", cols, args); err != nil {
			return err
		}
	}
	return nil
}

// InsertTokens inserts tokens, many to a statement.
func InsertTokens(ctx context.Context, db *sql.DB, schema, dialect string, tokens []Token) error {
	cols := []string{"id", "user_id", "key", "status", "name", "created_time", "accessed_time", "expired_time",
		"remain_quota", "used_quota", "unlimited_quota"}
	if schema == NewAPI {
		cols = append(cols, "model_limits_enabled", "model_limits", "allow_ips", "group", "deleted_at")
	} else {
		cols = append(cols, "models", "subnet")
	}
	const perStatement = 200
	for start := 0; start < len(tokens); start += perStatement {
		batch := tokens[start:min(start+perStatement, len(tokens))]
		var rows []string
		var args []any
		for _, t := range batch {
			var expiry any
			if t.ExpiredTime != nil {
				expiry = *t.ExpiredTime
			}
			a := []any{t.ID, t.UserID, t.StoredKey(), t.Status, t.Name, t.CreatedTime, t.AccessedTime, expiry,
				t.RemainQuota, t.UsedQuota, t.Unlimited}
			if schema == NewAPI {
				var deleted any
				if t.Deleted {
					deleted = Now.Add(-time.Hour).UTC()
				}
				a = append(a, t.ModelsOn, nullPtr(t.Models), nullPtr(t.IPs), nullPtr(t.Group), deleted)
			} else {
				a = append(a, nullPtr(t.Models), nullPtr(t.IPs))
			}
			rows = append(rows, "("+placeholders(dialect, len(a), len(args))+")")
			args = append(args, a...)
		}
		q := "INSERT INTO " + quote(dialect, "tokens") + " (" + quoteAll(dialect, cols) + ") VALUES " + strings.Join(rows, ", ")
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("insert tokens: %w", err)
		}
	}
	return nil
}

func insert(ctx context.Context, db *sql.DB, dialect, table string, cols []string, args []any) error {
	q := "INSERT INTO " + quote(dialect, table) + " (" + quoteAll(dialect, cols) + ") VALUES (" + placeholders(dialect, len(args), 0) + ")"
	if _, err := db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	return nil
}

func quoteAll(dialect string, cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quote(dialect, c)
	}
	return strings.Join(q, ", ")
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullPtr(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}
