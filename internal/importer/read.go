package importer

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// Schema is the project whose tables a source holds.
type Schema string

// The two schemas.
const (
	// NewAPI is new-api's: tokens with model_limits_enabled, model_limits,
	// allow_ips (one entry a line), group and deleted_at (soft delete);
	// users with deleted_at.
	NewAPI Schema = "new-api"
	// OneAPI is one-api's: tokens with models and subnet (comma-separated
	// CIDR ranges); users deleted by status 3.
	OneAPI Schema = "one-api"
)

// SourceUser is a row of users, as stored.
type SourceUser struct {
	ID     int64
	Status int64
	// Deleted: new-api's deleted_at is set (one-api's status 3 is read
	// by the rules).
	Deleted     bool
	AccessToken sql.NullString
}

// SourceToken is a row of tokens, as stored: NULL columns stay NULL.
type SourceToken struct {
	ID, UserID   int64
	Key          sql.NullString
	Status       sql.NullInt64
	Name         sql.NullString
	CreatedTime  sql.NullInt64
	AccessedTime sql.NullInt64
	ExpiredTime  sql.NullInt64
	RemainQuota  sql.NullInt64
	UsedQuota    sql.NullInt64
	Unlimited    sql.NullBool
	// new-api: model_limits_enabled and model_limits; one-api: models
	// (in ModelLimits, with ModelLimitsEnabled NULL).
	ModelLimitsEnabled sql.NullBool
	ModelLimits        sql.NullString
	// new-api: allow_ips; one-api: subnet.
	IPs   sql.NullString
	Group sql.NullString
	// Deleted: new-api's deleted_at is set.
	Deleted bool
}

// Reader reads a source's users and tokens.
type Reader struct {
	db      *sql.DB
	dialect Dialect
	schema  Schema
	tokens  map[string]bool // the tokens table's columns
	users   map[string]bool
}

// NewReader inspects the source's tokens and users tables and tells the
// schema from their columns: new-api's tokens have model_limits or
// allow_ips, one-api's do not.
func NewReader(ctx context.Context, db *sql.DB, dialect Dialect) (*Reader, error) {
	r := &Reader{db: db, dialect: dialect}
	var err error
	if r.tokens, err = r.columns(ctx, "tokens"); err != nil {
		return nil, err
	}
	if r.users, err = r.columns(ctx, "users"); err != nil {
		return nil, err
	}
	for _, c := range []string{"id", "user_id", "key", "status", "name", "expired_time", "remain_quota", "unlimited_quota"} {
		if !r.tokens[c] {
			return nil, fmt.Errorf("read source: tokens has no column %s: not a new-api or one-api database", c)
		}
	}
	for _, c := range []string{"id", "status"} {
		if !r.users[c] {
			return nil, fmt.Errorf("read source: users has no column %s: not a new-api or one-api database", c)
		}
	}
	r.schema = OneAPI
	if r.tokens["model_limits"] || r.tokens["allow_ips"] || r.tokens["model_limits_enabled"] {
		r.schema = NewAPI
	}
	return r, nil
}

// Schema is the schema the source holds.
func (r *Reader) Schema() Schema { return r.schema }

// columns lists a table's columns (lower case) from an empty query.
func (r *Reader) columns(ctx context.Context, table string) (map[string]bool, error) {
	rows, err := r.db.QueryContext(ctx, "SELECT * FROM "+r.dialect.quote(table)+" WHERE 1 = 0")
	if err != nil {
		return nil, fmt.Errorf("read source: table %s: %w", table, err)
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("read source: table %s: %w", table, err)
	}
	cols := make(map[string]bool, len(names))
	for _, n := range names {
		cols[strings.ToLower(n)] = true
	}
	return cols, rows.Err()
}

// column selects name when the table has it, else NULL.
func (r *Reader) column(have map[string]bool, name string) string {
	if have[name] {
		return r.dialect.quote(name)
	}
	return "NULL"
}

// deleted selects whether a row is soft-deleted (deleted_at set).
func (r *Reader) deleted(have map[string]bool) string {
	if have["deleted_at"] {
		return "(" + r.dialect.quote("deleted_at") + " IS NOT NULL)"
	}
	return "(1 = 0)"
}

// Users returns every row of users by id, and the ids in ascending order.
func (r *Reader) Users(ctx context.Context) (map[int64]SourceUser, []int64, error) {
	q := "SELECT " + strings.Join([]string{
		r.dialect.quote("id"), r.dialect.quote("status"), r.column(r.users, "access_token"), r.deleted(r.users),
	}, ", ") + " FROM " + r.dialect.quote("users")
	rows, err := r.db.QueryContext(ctx, q)
	if err != nil {
		return nil, nil, fmt.Errorf("read users: %w", err)
	}
	defer rows.Close()
	users := map[int64]SourceUser{}
	var ids []int64
	for rows.Next() {
		var u SourceUser
		var status sql.NullInt64
		var deleted sql.NullBool
		if err := rows.Scan(&u.ID, &status, &u.AccessToken, &deleted); err != nil {
			return nil, nil, fmt.Errorf("read users: %w", err)
		}
		u.Status, u.Deleted = status.Int64, deleted.Bool
		users[u.ID] = u
		ids = append(ids, u.ID)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read users: %w", err)
	}
	slices.Sort(ids)
	return users, ids, nil
}

// Tokens calls fn with every row of tokens, soft-deleted ones included, in
// ascending (user_id, id) order, as it reads them; fn's error stops it.
func (r *Reader) Tokens(ctx context.Context, fn func(SourceToken) error) error {
	models, enabled, ips := r.column(r.tokens, "models"), "NULL", r.column(r.tokens, "subnet")
	if r.schema == NewAPI {
		models, enabled, ips = r.column(r.tokens, "model_limits"), r.column(r.tokens, "model_limits_enabled"), r.column(r.tokens, "allow_ips")
	}
	q := "SELECT " + strings.Join([]string{
		r.dialect.quote("id"), r.dialect.quote("user_id"), r.dialect.quote("key"), r.dialect.quote("status"), r.dialect.quote("name"),
		r.column(r.tokens, "created_time"), r.column(r.tokens, "accessed_time"), r.dialect.quote("expired_time"),
		r.dialect.quote("remain_quota"), r.column(r.tokens, "used_quota"), r.dialect.quote("unlimited_quota"),
		enabled, models, ips, r.column(r.tokens, "group"), r.deleted(r.tokens),
	}, ", ") + " FROM " + r.dialect.quote("tokens") + " ORDER BY " + r.dialect.quote("user_id") + ", " + r.dialect.quote("id")
	rows, err := r.db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("read tokens: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t SourceToken
		var deleted sql.NullBool
		if err := rows.Scan(&t.ID, &t.UserID, &t.Key, &t.Status, &t.Name, &t.CreatedTime, &t.AccessedTime, &t.ExpiredTime,
			&t.RemainQuota, &t.UsedQuota, &t.Unlimited, &t.ModelLimitsEnabled, &t.ModelLimits, &t.IPs, &t.Group, &deleted); err != nil {
			return fmt.Errorf("read tokens: %w", err)
		}
		t.Deleted = deleted.Bool
		if err := fn(t); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read tokens: %w", err)
	}
	return nil
}
