package stack

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/llmgw/token-service/tools/template"
)

// The Lambda Invoke API's payload limits.
const (
	// MaxSyncPayloadBytes bounds a RequestResponse (and DryRun) payload.
	MaxSyncPayloadBytes = 6 << 20
	// MaxAsyncPayloadBytes bounds an Event payload.
	MaxAsyncPayloadBytes = 1 << 20
)

// invokePath is the Invoke operation's path: POST
// /2015-03-31/functions/{FunctionName}/invocations.
const (
	invokePrefix = "/2015-03-31/functions/"
	invokeSuffix = "/invocations"
)

// LambdaAPI serves the AWS Lambda Invoke API for the stack's functions, as
// `sam local start-lambda` does, so that the AWS SDK's Lambda client (with
// its endpoint pointed here) invokes them: the function's payload on 200, a
// function error as 200 with X-Amz-Function-Error, an unknown function as
// 404 ResourceNotFoundException, every instance busy as 429
// TooManyRequestsException; Event invocations answer 202 once started,
// DryRun 204. It checks no signature: any SigV4 credentials are accepted,
// and every caller is one principal (the relay's role, say), which may
// invoke a function only when one of the template's Lambda permissions
// admits it; any other function answers 403 AccessDeniedException, as
// Lambda does for a caller whose only grant would be a resource policy.
type LambdaAPI struct {
	template  *template.Stack
	principal string
	functions []string // logical ids, sorted
	known     map[string]bool
	invoker   Invoker
	log       *slog.Logger
}

// NewLambdaAPI returns the Invoke API of functions (logical ids of t), run
// by invoker and called as principal (an IAM role's ARN); log gets one line
// per request.
func NewLambdaAPI(t *template.Stack, functions []string, principal string, invoker Invoker, log *slog.Logger) *LambdaAPI {
	l := &LambdaAPI{template: t, principal: principal, invoker: invoker, log: log, known: map[string]bool{}}
	for _, f := range functions {
		if !l.known[f] {
			l.known[f] = true
			l.functions = append(l.functions, f)
		}
	}
	return l
}

// lambdaError is one of the Lambda API's error answers.
type lambdaError struct {
	status int
	code   string // x-amzn-ErrorType
	// messageKey is how the error's shape spells its message member
	// ("Message" or "message": the Lambda API is not consistent).
	messageKey string
	message    string
	reason     string // TooManyRequestsException's Reason
}

// accessDenied is Lambda's answer to a caller no policy allows.
func accessDenied(principal, arn string) *lambdaError {
	return &lambdaError{status: http.StatusForbidden, code: "AccessDeniedException", messageKey: "message",
		message: "User: " + principal + " is not authorized to perform: " + template.InvokeAction + " on resource: " + arn +
			" because no resource-based policy allows the " + template.InvokeAction + " action"}
}

func notFound(arn string) *lambdaError {
	return &lambdaError{status: http.StatusNotFound, code: "ResourceNotFoundException", messageKey: "Message",
		message: "Function not found: " + arn}
}

// lambdaEntry collects what the request line reports.
type lambdaEntry struct {
	function, invocationType, functionError, init string
}

// ServeHTTP answers one Invoke request and logs one line for it (never the
// payload, which may hold a key).
func (l *LambdaAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	entry := lambdaEntry{}
	requestID := newUUID()
	w.Header().Set("X-Amzn-Requestid", requestID)
	status := l.serve(w, r, &entry)
	attrs := []any{"status", status}
	for _, kv := range [][2]string{{"function", entry.function}, {"type", entry.invocationType},
		{"function_error", entry.functionError}, {"init", entry.init}} {
		if kv[1] != "" {
			attrs = append(attrs, kv[0], kv[1])
		}
	}
	attrs = append(attrs, "duration", time.Since(start).Round(10*time.Microsecond).String(), "request_id", requestID)
	l.log.Info("invoke", attrs...)
}

func (l *LambdaAPI) serve(w http.ResponseWriter, r *http.Request, entry *lambdaEntry) int {
	name, ok := strings.CutPrefix(r.URL.Path, invokePrefix)
	if ok {
		name, ok = strings.CutSuffix(name, invokeSuffix)
	}
	if !ok || name == "" || strings.Contains(name, "/") || r.Method != http.MethodPost {
		return writeLambdaError(w, &lambdaError{status: http.StatusNotFound, code: "UnknownOperationException",
			messageKey: "message", message: "Unknown operation " + r.Method + " " + r.URL.EscapedPath()})
	}

	invocationType := r.Header.Get("X-Amz-Invocation-Type")
	if invocationType == "" {
		invocationType = "RequestResponse"
	}
	entry.invocationType = invocationType
	limit := int64(MaxSyncPayloadBytes)
	switch invocationType {
	case "RequestResponse", "DryRun":
	case "Event":
		limit = MaxAsyncPayloadBytes
	default:
		return writeLambdaError(w, &lambdaError{status: http.StatusBadRequest, code: "InvalidParameterValueException",
			messageKey: "message", message: fmt.Sprintf("1 validation error detected: Value '%s' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]", invocationType)})
	}

	function, lerr := l.resolve(name, r.URL.Query().Get("Qualifier"))
	if lerr != nil {
		return writeLambdaError(w, lerr)
	}
	entry.function = function
	if _, ok := l.template.Allowing(function, template.Caller{Principal: l.principal}); !ok {
		l.log.Warn("no Lambda permission admits the caller", "function", function, "principal", l.principal)
		return writeLambdaError(w, accessDenied(l.principal, template.FunctionARN(function)))
	}

	payload, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return writeLambdaError(w, &lambdaError{status: http.StatusBadRequest, code: "InvalidRequestContentException",
			messageKey: "message", message: "Could not read request body"})
	}
	if int64(len(payload)) > limit {
		return writeLambdaError(w, &lambdaError{status: http.StatusRequestEntityTooLarge, code: "RequestTooLargeException",
			messageKey: "message", message: fmt.Sprintf("Request must be smaller than %d bytes for the InvokeFunction operation", limit)})
	}
	if len(strings.TrimSpace(string(payload))) == 0 {
		payload = []byte("{}")
	}
	if !json.Valid(payload) {
		return writeLambdaError(w, &lambdaError{status: http.StatusBadRequest, code: "InvalidRequestContentException",
			messageKey: "message", message: "Could not parse request body into json: the payload is not valid JSON"})
	}

	switch invocationType {
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent
	case "Event":
		// The caller does not wait: the invoke outlives its request.
		ctx := context.WithoutCancel(r.Context())
		go func() {
			if _, err := l.invoker.Invoke(ctx, function, payload); err != nil {
				l.log.Warn("event invocation failed", "function", function, "err", err)
			}
		}()
		w.WriteHeader(http.StatusAccepted)
		return http.StatusAccepted
	}

	inv, err := l.invoker.Invoke(r.Context(), function, payload)
	var fe *FunctionError
	switch {
	case err == nil:
	case errors.As(err, &fe):
		entry.functionError = fe.Kind
		l.log.Warn("function failed", "function", function, "err", err)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amz-Executed-Version", "$LATEST")
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(functionErrorPayload(fe, w.Header().Get("X-Amzn-Requestid")))
		return http.StatusOK
	case errors.Is(err, ErrNoFunction):
		return writeLambdaError(w, notFound(template.FunctionARN(function)))
	case errors.Is(err, ErrTooManyRequests):
		return writeLambdaError(w, &lambdaError{status: http.StatusTooManyRequests, code: "TooManyRequestsException",
			messageKey: "message", message: "Rate Exceeded.", reason: "ReservedFunctionConcurrentInvocationLimitExceeded"})
	default:
		l.log.Error("invoke failed", "function", function, "err", err)
		return writeLambdaError(w, &lambdaError{status: http.StatusInternalServerError, code: "ServiceException",
			messageKey: "Message", message: "The local runner could not invoke the function"})
	}
	if inv.Cold {
		entry.init = inv.InitDuration.Round(10 * time.Microsecond).String()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(inv.Payload)
	return http.StatusOK
}

// functionARN matches a full or partial function ARN:
// [arn:aws:lambda:<region>:]<account>:function:<name>[:<qualifier>].
var functionARN = regexp.MustCompile(`^(?:arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:)?\d{12}:function:([a-zA-Z0-9_-]+)(?::([a-zA-Z0-9$_-]+))?$`)

// nameQualifier matches <name>[:<qualifier>].
var nameQualifier = regexp.MustCompile(`^([a-zA-Z0-9_-]+)(?::([a-zA-Z0-9$_-]+))?$`)

// resolve maps the path's FunctionName (a logical id, a name ending in
// "-<LogicalId>" or in CloudFormation's "-<LogicalId>-<suffix>", or an ARN
// of one) and the Qualifier to a logical id. Only $LATEST exists locally.
func (l *LambdaAPI) resolve(name, qualifier string) (string, *lambdaError) {
	m := functionARN.FindStringSubmatch(name)
	if m == nil {
		m = nameQualifier.FindStringSubmatch(name)
	}
	if m == nil {
		return "", notFound(name)
	}
	fn, q := m[1], m[2]
	if q != "" && qualifier != "" && q != qualifier {
		return "", &lambdaError{status: http.StatusBadRequest, code: "InvalidParameterValueException", messageKey: "message",
			message: "The derived qualifier from the function name does not match the specified qualifier."}
	}
	if q == "" {
		q = qualifier
	}
	id := l.logicalID(fn)
	if id == "" {
		return "", notFound(arnOf(name, fn, q))
	}
	if q != "" && q != "$LATEST" {
		return "", notFound(arnOf(name, id, q))
	}
	return id, nil
}

// logicalID finds the function a name stands for; "" if none or several.
func (l *LambdaAPI) logicalID(name string) string {
	if l.known[name] {
		return name
	}
	found := ""
	for _, id := range l.functions {
		if strings.HasSuffix(name, "-"+id) || cfnName(name, id) {
			if found != "" {
				return ""
			}
			found = id
		}
	}
	return found
}

// cfnName reports a CloudFormation generated name, <stack>-<id>-<suffix>.
func cfnName(name, id string) bool {
	i := strings.LastIndex(name, "-"+id+"-")
	if i < 0 {
		return false
	}
	suffix := name[i+len(id)+2:]
	return suffix != "" && !strings.Contains(suffix, "-")
}

func arnOf(given, fn, qualifier string) string {
	arn := template.FunctionARN(fn)
	if strings.Contains(given, ":function:") {
		arn = strings.TrimSuffix(given, ":"+qualifier)
	}
	if qualifier != "" {
		arn += ":" + qualifier
	}
	return arn
}

func writeLambdaError(w http.ResponseWriter, e *lambdaError) int {
	body := map[string]string{"Type": "User", e.messageKey: e.message}
	if e.status >= 500 {
		body["Type"] = "Service"
	}
	if e.reason != "" {
		body["Reason"] = e.reason
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Errortype", e.code)
	w.WriteHeader(e.status)
	_, _ = w.Write(b)
	return e.status
}

// functionErrorPayload is the error document Lambda returns for a failed
// invocation: the runtime's own for an error, Lambda's for a timeout or a
// crash.
func functionErrorPayload(fe *FunctionError, requestID string) []byte {
	if fe.Kind == "error" && len(fe.Payload) > 0 {
		return fe.Payload
	}
	doc := map[string]string{}
	switch fe.Kind {
	case "timeout":
		doc["errorType"] = "Sandbox.Timedout"
		doc["errorMessage"] = "RequestId: " + requestID + " Error: " + strings.TrimSpace(fe.Detail)
	default:
		doc["errorType"] = "Runtime.ExitError"
		doc["errorMessage"] = "RequestId: " + requestID + " Error: Runtime exited (" + fe.Detail + ")"
	}
	b, _ := json.Marshal(doc)
	return b
}

// newUUID returns a random (version 4) UUID, the shape of Lambda request ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
