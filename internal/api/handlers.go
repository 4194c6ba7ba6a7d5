package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/llmgw/token-service/internal/token"
)

// Clock returns the current time; handlers take one so tests can move it.
type Clock func() time.Time

func (c Clock) now() time.Time {
	if c == nil {
		return time.Now()
	}
	return c()
}

// replyReserve is the time kept, before the invocation's deadline, to write
// the answer.
const replyReserve = time.Second

// endpoint is what every handler shares: the caller's identity first, one
// error path, one access log line per request (method, path, status, duration;
// never a body, a query, a key or the Authorization header).
type endpoint struct {
	name  string
	serve func(w http.ResponseWriter, r *http.Request, userID string) error
}

func (e endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	serveLogged(w, r, e.name, func(w http.ResponseWriter, r *http.Request) (string, error) {
		userID, err := UserID(r)
		if err == nil {
			err = e.serve(w, r, userID)
		}
		if err != nil {
			WriteError(w, r, err)
		}
		return userID, err
	})
}

// serveLogged runs serve, which answers the request itself (errors
// included) and returns the caller's user id (or "") and its error, within
// the invocation's deadline less replyReserve, then writes the one access
// log line of the request.
func serveLogged(w http.ResponseWriter, r *http.Request, name string, serve func(http.ResponseWriter, *http.Request) (string, error)) {
	start := time.Now()
	// End the store's work (its retries above all) before Lambda ends the
	// invocation, so that the client gets our answer, not API Gateway's.
	if deadline, ok := r.Context().Deadline(); ok {
		ctx, cancel := context.WithDeadline(r.Context(), deadline.Add(-replyReserve))
		defer cancel()
		r = r.WithContext(ctx)
	}
	rec := &statusRecorder{ResponseWriter: w}
	userID, err := serve(rec, r)
	// The access line; the error writer has logged a 5xx's cause, once.
	slog.InfoContext(r.Context(), "request",
		"endpoint", name,
		"request_id", RequestID(r),
		"user_id", userID,
		"method", r.Method,
		"path", r.URL.Path,
		"status", rec.status,
		"code", token.ErrorCode(err),
		"duration_ms", time.Since(start).Milliseconds())
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// ListPage is the data of a list response.
type ListPage struct {
	Items    []Token `json:"items"`
	Total    int     `json:"total"`
	Page     int     `json:"page"`
	PageSize int     `json:"page_size"`
}

// ListTokens answers GET /api/token?p=1&size=20: a page of the caller's
// tokens, newest first, and their count. Every token read here and below
// carries its budget_usage at clock's now, in the zone of BudgetZone when it
// has none of its own.
func ListTokens(store token.Store, clock Clock, opts ...KeyOption) http.Handler {
	zone := readKeyOptions(opts).budgetZone
	return endpoint{name: "list-tokens", serve: func(w http.ResponseWriter, r *http.Request, userID string) error {
		page, size := ParsePage(r.URL.Query())
		p, err := store.List(r.Context(), userID, page, size)
		if err != nil {
			return serverError(token.EListFailed, err)
		}
		WriteOK(w, ListPage{Items: newTokens(p.Items, clock.now(), zone, false), Total: p.Total, Page: page, PageSize: size})
		return nil
	}}
}

// SearchTokens answers GET /api/token/search?keyword=&token=: at most
// SearchLimit of the caller's tokens, newest first. With AcceptLegacyKeys,
// a whole key without a checksum is searched as a whole key.
func SearchTokens(store token.Store, clock Clock, opts ...KeyOption) http.Handler {
	o := readKeyOptions(opts)
	legacy, zone := o.acceptLegacy, o.budgetZone
	return endpoint{name: "search-tokens", serve: func(w http.ResponseWriter, r *http.Request, userID string) error {
		q := ParseSearch(r.URL.Query())
		q.AcceptLegacyKey = legacy
		ts, err := store.Search(r.Context(), userID, q, SearchLimit)
		if err != nil {
			return serverError(token.ESearchFailed, err)
		}
		WriteOK(w, newTokens(ts, clock.now(), zone, false))
		return nil
	}}
}

// GetToken answers GET /api/token/{id}.
func GetToken(store token.Store, clock Clock, opts ...KeyOption) http.Handler {
	zone := readKeyOptions(opts).budgetZone
	return endpoint{name: "get-token", serve: func(w http.ResponseWriter, r *http.Request, userID string) error {
		id, err := PathID(r)
		if err != nil {
			return err
		}
		t, err := store.Get(r.Context(), userID, id)
		if err != nil {
			return err
		}
		WriteOK(w, NewToken(t, clock.now(), zone, false))
		return nil
	}}
}

// CreateTokens answers POST /api/token: one token (data is an object) or,
// with count >= 2, several (data is an array), all or none, each with its
// full key, the one response that shows it unasked (so no-store).
func CreateTokens(store token.Store, rules token.Rules, clock Clock, opts ...KeyOption) http.Handler {
	zone := readKeyOptions(opts).budgetZone
	return endpoint{name: "create-token", serve: func(w http.ResponseWriter, r *http.Request, userID string) error {
		body, err := ReadBody(w, r)
		if err != nil {
			return err
		}
		now := clock.now()
		spec, err := ParseCreate(body, rules, now)
		if err != nil {
			return err
		}
		tokens, err := spec.Tokens(userID, now)
		if err != nil {
			return fmt.Errorf("create token: new key: %w", err)
		}
		created, err := store.Create(r.Context(), userID, tokens)
		if err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		out := newTokens(created, now, zone, true)
		if spec.Count == 1 && len(out) == 1 {
			WriteOK(w, out[0])
			return nil
		}
		WriteOK(w, out)
		return nil
	}}
}

// UpdateToken answers PUT /api/token (and ?status_only=true): only the
// fields present change; data is the updated token, key masked.
func UpdateToken(store token.Store, rules token.Rules, clock Clock, opts ...KeyOption) http.Handler {
	zone := readKeyOptions(opts).budgetZone
	return endpoint{name: "update-token", serve: func(w http.ResponseWriter, r *http.Request, userID string) error {
		statusOnly, _ := strconv.ParseBool(r.URL.Query().Get("status_only"))
		body, err := ReadBody(w, r)
		if err != nil {
			return err
		}
		now := clock.now()
		id, patch, err := ParseUpdate(body, statusOnly, rules, now)
		if err != nil {
			return err
		}
		t, err := store.Update(r.Context(), userID, id, patch, now)
		if err != nil {
			return err
		}
		WriteOK(w, NewToken(t, now, zone, false))
		return nil
	}}
}

// DeleteToken answers DELETE /api/token/{id}.
func DeleteToken(store token.Store) http.Handler {
	return endpoint{name: "delete-token", serve: func(w http.ResponseWriter, r *http.Request, userID string) error {
		id, err := PathID(r)
		if err != nil {
			return err
		}
		if err := store.Delete(r.Context(), userID, id); err != nil {
			return err
		}
		WriteOK(w, nil)
		return nil
	}}
}

// BatchDeleteTokens answers POST /api/token/batch {"ids":[...]}: data is how
// many of the caller's tokens were deleted; ids of others count as not deleted.
func BatchDeleteTokens(store token.Store) http.Handler {
	return endpoint{name: "batch-delete-tokens", serve: func(w http.ResponseWriter, r *http.Request, userID string) error {
		body, err := ReadBody(w, r)
		if err != nil {
			return err
		}
		ids, err := ParseBatch(body)
		if err != nil {
			return err
		}
		n, err := store.DeleteMany(r.Context(), userID, ids)
		if err != nil && n == 0 {
			return err
		}
		if err != nil {
			// Some transactions landed before one failed: those deletions
			// are real, so report them; the rest can be sent again.
			slog.ErrorContext(r.Context(), "batch delete stopped part way",
				"request_id", RequestID(r), "deleted", n, "error", err.Error())
		}
		WriteOK(w, n)
		return nil
	}}
}
