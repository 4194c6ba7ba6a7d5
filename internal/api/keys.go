package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/llmgw/token-service/internal/token"
)

// RevealedKey is the data of POST /api/token/{id}/key.
type RevealedKey struct {
	Key string `json:"key"`
}

// RevealedKeys is the data of POST /api/token/batch/keys: full keys by
// token id (as a JSON object key); ids the caller does not own are absent.
type RevealedKeys struct {
	Keys map[string]string `json:"keys"`
}

// RevealKey answers POST /api/token/{id}/key: the token's full key,
// whatever its status, counted against the caller's reveal limit
// (revealsPerMinute, 429 with Retry-After above it). Another user's id is
// 404. Every reveal writes one audit line (never the key).
func RevealKey(store token.KeyStore, revealsPerMinute int, clock Clock) http.Handler {
	return endpoint{name: "reveal-token-key", serve: func(w http.ResponseWriter, r *http.Request, userID string) error {
		w.Header().Set("Cache-Control", "no-store")
		id, err := PathID(r)
		if err != nil {
			return err
		}
		t, err := store.RevealKey(r.Context(), userID, id, revealsPerMinute, clock.now())
		if err != nil {
			return refuseRate(w, err)
		}
		auditKeys(r, "key_revealed", userID, []int64{t.ID})
		WriteOK(w, RevealedKey{Key: t.Key})
		return nil
	}}
}

// RevealKeys answers POST /api/token/batch/keys {"ids":[...]} (1 to 100
// ids, as the batch delete parses them): the full keys of the caller's
// tokens among ids; the batch counts as one reveal.
func RevealKeys(store token.KeyStore, revealsPerMinute int, clock Clock) http.Handler {
	return endpoint{name: "reveal-token-keys", serve: func(w http.ResponseWriter, r *http.Request, userID string) error {
		w.Header().Set("Cache-Control", "no-store")
		body, err := ReadBody(w, r)
		if err != nil {
			return err
		}
		ids, err := ParseBatch(body)
		if err != nil {
			return err
		}
		ts, err := store.RevealKeys(r.Context(), userID, ids, revealsPerMinute, clock.now())
		if err != nil {
			return refuseRate(w, err)
		}
		keys := make(map[string]string, len(ts))
		revealed := make([]int64, len(ts))
		for i, t := range ts {
			keys[strconv.FormatInt(t.ID, 10)] = t.Key
			revealed[i] = t.ID
		}
		auditKeys(r, "key_revealed", userID, revealed)
		WriteOK(w, RevealedKeys{Keys: keys})
		return nil
	}}
}

// RotateRequest is the body of POST /api/token/{id}/rotate; an empty body
// is grace 0.
type RotateRequest struct {
	GraceSeconds json.RawMessage `json:"grace_seconds"`
}

// ParseRotate decodes a rotate body: grace_seconds, when present and not
// null, must be an integer from 0 to token.MaxGraceSeconds, else
// invalid_grace_seconds. An empty body means grace 0.
func ParseRotate(body []byte) (time.Duration, error) {
	if len(body) == 0 {
		return 0, nil
	}
	var req RotateRequest
	if err := decodeBody(body, &req); err != nil {
		return 0, err
	}
	if len(req.GraceSeconds) == 0 || string(req.GraceSeconds) == "null" {
		return 0, nil
	}
	var n json.Number // a JSON number only: json.Number would also take "60"
	if req.GraceSeconds[0] == '"' || json.Unmarshal(req.GraceSeconds, &n) != nil {
		return 0, token.Errorf(token.EInvalidGrace, "grace_seconds must be an integer")
	}
	g, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil || g < 0 || g > token.MaxGraceSeconds {
		return 0, token.Errorf(token.EInvalidGrace, "0 to %d", token.MaxGraceSeconds)
	}
	return time.Duration(g) * time.Second, nil
}

// RotateToken answers POST /api/token/{id}/rotate {"grace_seconds": N}: a
// new key for the token (same id, name, limits, quota, status, used
// quota); the old key keeps verifying for N seconds. Data is the token with
// its new full key, no-store, with its budget_usage (BudgetZone). Another
// user's id is 404.
func RotateToken(store token.KeyStore, clock Clock, opts ...KeyOption) http.Handler {
	zone := readKeyOptions(opts).budgetZone
	return endpoint{name: "rotate-token", serve: func(w http.ResponseWriter, r *http.Request, userID string) error {
		w.Header().Set("Cache-Control", "no-store")
		id, err := PathID(r)
		if err != nil {
			return err
		}
		body, err := ReadBody(w, r)
		if err != nil {
			return err
		}
		grace, err := ParseRotate(body)
		if err != nil {
			return err
		}
		key, err := token.NewKey()
		if err != nil {
			return fmt.Errorf("rotate token: new key: %w", err)
		}
		now := clock.now()
		t, err := store.Rotate(r.Context(), userID, id, key, grace, now)
		if err != nil {
			return err
		}
		slog.InfoContext(r.Context(), "audit", "event", "key_rotated", "user_id", userID,
			"token_ids", []int64{t.ID}, "grace_seconds", int64(grace/time.Second), "request_id", RequestID(r))
		WriteOK(w, NewToken(t, now, zone, true))
		return nil
	}}
}

// refuseRate sets Retry-After when err is a rate limit refusal, and
// returns err for the error path.
func refuseRate(w http.ResponseWriter, err error) error {
	var rl *token.RateLimitError
	if errors.As(err, &rl) {
		w.Header().Set("Retry-After", strconv.FormatInt(rl.RetryAfter, 10))
	}
	return err
}

// auditKeys writes the one structured audit line of a key operation: the
// event, the user, the token ids and the request id; never a key.
func auditKeys(r *http.Request, event, userID string, ids []int64) {
	slog.InfoContext(r.Context(), "audit", "event", event, "user_id", userID,
		"token_ids", ids, "request_id", RequestID(r))
}
