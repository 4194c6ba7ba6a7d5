package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/llmgw/token-service/internal/token"
)

// MaxBodyBytes is the largest request body read; a larger one is 413.
const MaxBodyBytes = 64 << 10

// Paging bounds of the list endpoint.
const (
	DefaultPage     = 1
	DefaultPageSize = 20
	MaxPageSize     = 100
	// MaxPage keeps (page-1)*size far from overflowing; pages past the
	// user's tokens are simply empty.
	MaxPage = 1_000_000
	// SearchLimit is the most tokens a search returns.
	SearchLimit = 100
)

// ReadBody reads r's body, at most MaxBodyBytes: a larger one is
// body_too_large, a body that cannot be read is invalid_json.
func ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, &token.Error{Code: token.EBodyTooLarge}
		}
		return nil, &token.Error{Code: token.EInvalidJSON}
	}
	return body, nil
}

// decodeBody decodes one JSON value into v. Malformed JSON, a wrong type,
// trailing data, an empty body, or text Go's decoder would rewrite (see
// checkJSONText) is invalid_json; unknown fields are ignored.
func decodeBody(body []byte, v any) error {
	if err := checkJSONText(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return &token.Error{Code: token.EInvalidJSON}
	}
	if _, err := dec.Token(); err != io.EOF {
		return token.Errorf(token.EInvalidJSON, "trailing data after the JSON value")
	}
	return nil
}

// checkJSONText refuses (invalid_json) a body that is not valid UTF-8, or
// that holds a \u escape of a lone surrogate (a high one not followed by
// a low one, or a low one alone): Go's decoder would silently replace
// either with U+FFFD, so what is stored would not be what was sent. An
// escaped backslash ("\\ud800") is no escape. Outside strings a backslash
// is malformed JSON anyway, which the decoder refuses.
func checkJSONText(body []byte) error {
	if !utf8.Valid(body) {
		return token.Errorf(token.EInvalidJSON, "the body is not valid UTF-8")
	}
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		r, ok := escapedRune(body[i:])
		switch {
		case !ok:
			i++ // an escape of one character: skip it
			continue
		case utf16.IsSurrogate(r) && r < 0xDC00:
			low, ok := escapedRune(body[i+6:])
			if !ok || low < 0xDC00 || low > 0xDFFF {
				return token.Errorf(token.EInvalidJSON, "a lone surrogate escape")
			}
			i += 11 // both escapes
		case utf16.IsSurrogate(r):
			return token.Errorf(token.EInvalidJSON, "a lone surrogate escape")
		default:
			i += 5
		}
	}
	return nil
}

// escapedRune reads a \uXXXX escape at the start of b.
func escapedRune(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[2:6]), 16, 16)
	if err != nil {
		return 0, false
	}
	return rune(n), true
}

// List is a list of strings a request may send as a JSON array of strings or
// as one string separated by commas or newlines.
type List []string

// UnmarshalJSON accepts an array of strings or a separated string.
func (l *List) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' })
		return nil
	}
	var a []string
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	*l = a
	return nil
}

// CreateRequest is the body of POST /api/token. Fields a user may not set
// (id, user_id, key, status, quotas used, times) are not here: sent, they
// are ignored.
type CreateRequest struct {
	Name               string `json:"name"`
	ExpiredTime        *int64 `json:"expired_time"` // absent: never expires
	RemainQuota        int64  `json:"remain_quota"`
	UnlimitedQuota     bool   `json:"unlimited_quota"`
	ModelLimitsEnabled bool   `json:"model_limits_enabled"`
	ModelLimits        List   `json:"model_limits"`
	AllowIPs           List   `json:"allow_ips"`
	Group              string `json:"group"`
	Count              *int   `json:"count"` // absent: 1
	RPMLimit           int64  `json:"rpm_limit"`
	// Budgets and BudgetTimezone are read by ParseCreate (parseBudgets):
	// a wrong value of theirs is invalid_budgets, not invalid_json.
	Budgets        json.RawMessage `json:"budgets"`
	BudgetTimezone json.RawMessage `json:"budget_timezone"`
}

// Spec is the create input of req, with the documented defaults.
func (req CreateRequest) Spec() token.Spec {
	s := token.Spec{
		Name:               req.Name,
		ExpiredTime:        token.NeverExpires,
		RemainQuota:        req.RemainQuota,
		UnlimitedQuota:     req.UnlimitedQuota,
		ModelLimitsEnabled: req.ModelLimitsEnabled,
		ModelLimits:        []string(req.ModelLimits),
		AllowIPs:           []string(req.AllowIPs),
		Group:              req.Group,
		RPMLimit:           req.RPMLimit,
		Count:              1,
	}
	if req.ExpiredTime != nil {
		s.ExpiredTime = *req.ExpiredTime
	}
	if req.Count != nil {
		s.Count = *req.Count
	}
	return s
}

// ParseCreate decodes and validates a create body at now.
func ParseCreate(body []byte, rules token.Rules, now time.Time) (token.Spec, error) {
	var req CreateRequest
	if err := decodeBody(body, &req); err != nil {
		return token.Spec{}, err
	}
	s := req.Spec()
	var err error
	if s.Budgets, _, err = parseBudgets(req.Budgets); err != nil {
		return token.Spec{}, err
	}
	if s.BudgetTimezone, _, err = parseBudgetTimezone(req.BudgetTimezone); err != nil {
		return token.Spec{}, err
	}
	if err := rules.Validate(&s, now); err != nil {
		return token.Spec{}, err
	}
	return s, nil
}

// UpdateRequest is the body of PUT /api/token. Every field but id is
// optional: absent or null leaves the token's value as it is.
type UpdateRequest struct {
	ID                 json.RawMessage `json:"id"`
	Name               *string         `json:"name"`
	ExpiredTime        *int64          `json:"expired_time"`
	RemainQuota        *int64          `json:"remain_quota"`
	UnlimitedQuota     *bool           `json:"unlimited_quota"`
	ModelLimitsEnabled *bool           `json:"model_limits_enabled"`
	ModelLimits        *List           `json:"model_limits"`
	AllowIPs           *List           `json:"allow_ips"`
	Group              *string         `json:"group"`
	Status             *int64          `json:"status"`
	RPMLimit           *int64          `json:"rpm_limit"`
	// Budgets and BudgetTimezone are read by ParseUpdate (parseBudgets).
	Budgets        json.RawMessage `json:"budgets"`
	BudgetTimezone json.RawMessage `json:"budget_timezone"`
}

// Patch is the partial update req asks for.
func (req UpdateRequest) Patch() token.Patch {
	p := token.Patch{
		Name:               req.Name,
		ExpiredTime:        req.ExpiredTime,
		RemainQuota:        req.RemainQuota,
		UnlimitedQuota:     req.UnlimitedQuota,
		ModelLimitsEnabled: req.ModelLimitsEnabled,
		Group:              req.Group,
		RPMLimit:           req.RPMLimit,
	}
	if req.ModelLimits != nil {
		l := []string(*req.ModelLimits)
		p.ModelLimits = &l
	}
	if req.AllowIPs != nil {
		l := []string(*req.AllowIPs)
		p.AllowIPs = &l
	}
	if req.Status != nil {
		st := token.Status(*req.Status)
		if int64(st) != *req.Status {
			st = 0 // out of int range: CheckStatus refuses 0
		}
		p.Status = &st
	}
	return p
}

// ParseUpdate decodes and validates an update body at now: the token id
// (a positive JSON integer, else invalid_id) and the patch. With statusOnly
// the patch keeps only the status, which is then required.
func ParseUpdate(body []byte, statusOnly bool, rules token.Rules, now time.Time) (int64, token.Patch, error) {
	var req UpdateRequest
	if statusOnly {
		// Only id and status are read, so the other fields' types do not
		// matter: they are ignored.
		var so struct {
			ID     json.RawMessage `json:"id"`
			Status *int64          `json:"status"`
		}
		if err := decodeBody(body, &so); err != nil {
			return 0, token.Patch{}, err
		}
		req = UpdateRequest{ID: so.ID, Status: so.Status}
	} else if err := decodeBody(body, &req); err != nil {
		return 0, token.Patch{}, err
	}
	id, err := token.ParseID(string(req.ID))
	if err != nil {
		return 0, token.Patch{}, err
	}
	p := req.Patch()
	if statusOnly {
		if p.Status == nil {
			return 0, token.Patch{}, token.Errorf(token.EInvalidStatus, "status is required")
		}
		p = p.StatusOnly()
	} else if err := readBudgetPatch(&p, req); err != nil {
		return 0, token.Patch{}, err
	}
	if err := rules.ValidatePatch(&p, now); err != nil {
		return 0, token.Patch{}, err
	}
	return id, p, nil
}

// BatchRequest is the body of POST /api/token/batch.
type BatchRequest struct {
	IDs json.RawMessage `json:"ids"`
}

// ParseBatch decodes a batch body: ids must be a non-empty array of at most
// token.MaxBatchIDs positive integers, else invalid_request. Duplicates
// count once.
func ParseBatch(body []byte) ([]int64, error) {
	var req BatchRequest
	if err := decodeBody(body, &req); err != nil {
		return nil, err
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(req.IDs, &raw); err != nil || raw == nil {
		return nil, token.Errorf(token.EInvalidRequest, "ids must be an array of ids")
	}
	if len(raw) > token.MaxBatchIDs {
		return nil, token.Errorf(token.EInvalidRequest, "ids must hold 1 to %d ids", token.MaxBatchIDs)
	}
	ids := make([]int64, len(raw))
	for i, b := range raw {
		id, err := token.ParseID(string(b))
		if err != nil {
			return nil, token.Errorf(token.EInvalidRequest, "ids must be positive integers")
		}
		ids[i] = id
	}
	return token.UniqueIDs(ids)
}

// ParsePage reads the list query: p (default 1) and size or its synonym
// page_size (default 20, at most 100). Values that are not numbers or are
// below 1 fall back to the defaults; values above the bounds are cut to them.
func ParsePage(q map[string][]string) (page, size int) {
	page = queryInt(q, "p", DefaultPage, MaxPage)
	size = queryInt(q, "size", 0, MaxPageSize)
	if size == 0 {
		size = queryInt(q, "page_size", DefaultPageSize, MaxPageSize)
	}
	return page, size
}

func queryInt(q map[string][]string, name string, def, maxV int) int {
	vs := q[name]
	if len(vs) == 0 {
		return def
	}
	s := strings.TrimSpace(vs[0])
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// A number too large to parse is still a number: cut it to the bound.
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange && !strings.HasPrefix(s, "-") {
			return maxV
		}
		return def
	}
	switch {
	case n < 1:
		return def
	case n > int64(maxV):
		return maxV
	}
	return int(n)
}

// ParseSearch reads the search query: keyword (name) and token (key).
func ParseSearch(q map[string][]string) token.SearchQuery {
	first := func(name string) string {
		if vs := q[name]; len(vs) > 0 {
			return strings.TrimSpace(vs[0])
		}
		return ""
	}
	return token.SearchQuery{Keyword: first("keyword"), Key: first("token")}
}
