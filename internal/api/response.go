package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/llmgw/token-service/internal/message"
	"github.com/llmgw/token-service/internal/token"
)

// Envelope is the body of every response of a function.
type Envelope struct {
	Success bool   `json:"success"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
	// Code is the stable machine-readable error code; failures only.
	Code string `json:"code,omitempty"`
}

// statusByCode is the one table from error codes to HTTP statuses. A code
// missing here is answered as internal_error, 500.
var statusByCode = map[string]int{
	token.EInvalidRequest:  http.StatusBadRequest,
	token.EInvalidJSON:     http.StatusBadRequest,
	token.EBodyTooLarge:    http.StatusRequestEntityTooLarge,
	token.EInvalidID:       http.StatusBadRequest,
	token.ENameRequired:    http.StatusBadRequest,
	token.ENameTooLong:     http.StatusBadRequest,
	token.EInvalidName:     http.StatusBadRequest,
	token.EInvalidExpiry:   http.StatusBadRequest,
	token.EInvalidQuota:    http.StatusBadRequest,
	token.EInvalidModels:   http.StatusBadRequest,
	token.EInvalidAllowIPs: http.StatusBadRequest,
	token.EInvalidGroup:    http.StatusBadRequest,
	token.EInvalidCount:    http.StatusBadRequest,
	token.EInvalidStatus:   http.StatusBadRequest,
	token.EInvalidRPMLimit: http.StatusBadRequest,
	token.EInvalidGrace:    http.StatusBadRequest,
	token.EInvalidBudgets:  http.StatusBadRequest,
	token.ETokenExpired:    http.StatusBadRequest,
	token.ETokenExhausted:  http.StatusBadRequest,
	token.ENotFound:        http.StatusNotFound,
	token.ETokenUnreadable: http.StatusInternalServerError,
	token.ETokenLimit:      http.StatusConflict,
	token.EUnauthorized:    http.StatusUnauthorized,
	token.ERateLimited:     http.StatusTooManyRequests,
	token.EInternal:        http.StatusInternalServerError,
	token.EListFailed:      http.StatusInternalServerError,
	token.ESearchFailed:    http.StatusInternalServerError,
}

// verbatim codes keep their upstream message exactly: no detail is appended.
var verbatim = map[string]bool{
	token.EInvalidRequest: true,
	token.ENameTooLong:    true,
	token.ETokenExpired:   true,
	token.ETokenExhausted: true,
	token.ENotFound:       true,
	token.EListFailed:     true,
	token.ESearchFailed:   true,
}

// StatusOf returns the HTTP status of an error code (500 for an unknown one).
func StatusOf(code string) int {
	if s, ok := statusByCode[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// WriteOK writes a 200 success envelope around data.
func WriteOK(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, Envelope{Success: true, Message: "", Data: data})
}

// WriteError answers err: its code's status and catalog message in the
// request's language. A 4xx message may carry the error's detail; a 5xx
// carries nothing of err, which is logged here, once, with the request id.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	code := token.ErrorCode(err)
	if !message.Has(code) {
		code = token.EInternal
	}
	status := StatusOf(code)
	msg := message.Text(code, RequestLang(r))
	if status >= 500 {
		logFailure(r, code, status, err)
	} else if d := token.ErrorDetail(err); d != "" && !verbatim[code] {
		msg += ": " + strings.ToValidUTF8(d, "")
	}
	writeJSON(w, status, Envelope{Success: false, Message: msg, Code: code})
}

// logFailure logs the cause of a 5xx answer, with the request id: the one
// place a server-side error is logged.
func logFailure(r *http.Request, code string, status int, err error) {
	slog.ErrorContext(r.Context(), "request failed",
		"request_id", RequestID(r), "code", code, "status", status, "error", err.Error())
}

// serverError gives an internal failure the endpoint's own 5xx code (such as
// list_failed) while keeping the cause for the log; errors that already
// carry a code are returned unchanged.
func serverError(code string, err error) error {
	if token.ErrorCode(err) != token.EInternal {
		return err
	}
	return errors.Join(&token.Error{Code: code}, err)
}

// writeJSON writes body (an Envelope, or the new-api shape of the usage
// endpoint) as JSON with status.
func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		// Only a programming error (an unmarshalable data value) gets here.
		slog.Error("encode response", "error", err.Error())
		status = http.StatusInternalServerError
		b, _ = json.Marshal(Envelope{Message: message.Text(token.EInternal, message.ZH), Code: token.EInternal})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
