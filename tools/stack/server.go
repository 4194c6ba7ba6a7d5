package stack

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/llmgw/token-service/tools/template"
)

// MaxBodyBytes is API Gateway's request payload limit; larger bodies get 413.
const MaxBodyBytes = 10 << 20

// Invoker runs an event through a function by logical id. Pools does it
// with RIE processes; a Lambda Invoke API server can share the same one.
type Invoker interface {
	Invoke(ctx context.Context, function string, payload []byte) (*Invocation, error)
}

// ErrNoFunction is returned by Pools.Invoke for a function it does not run.
var ErrNoFunction = errors.New("no such function")

// Pools is one Pool per function logical id.
type Pools map[string]*Pool

// Invoke runs payload through function's pool.
func (ps Pools) Invoke(ctx context.Context, function string, payload []byte) (*Invocation, error) {
	p := ps[function]
	if p == nil {
		return nil, fmt.Errorf("invoke %s: %w", function, ErrNoFunction)
	}
	return p.Invoke(ctx, payload)
}

// Names are the pools' function logical ids, sorted.
func (ps Pools) Names() []string {
	names := make([]string, 0, len(ps))
	for name := range ps {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Close closes every pool.
func (ps Pools) Close() {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Close()
		}()
	}
	wg.Wait()
}

// API serves a template's HttpApi the way API Gateway does: routes, the
// Lambda authorizer with its cache, payload 2.0 events and responses. It
// invokes a function or an authorizer only when one of the template's
// Lambda permissions admits API Gateway for that route or authorizer;
// without one it answers 500 {"message":"Internal Server Error"}, as API
// Gateway does, and logs why.
type API struct {
	template    *template.Stack
	router      *Router
	authorizers map[string]*template.Authorizer
	invoker     Invoker
	log         *slog.Logger
	now         func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]authVerdict
}

type authVerdict struct {
	allowed bool
	context map[string]any
	expires time.Time
}

// NewAPI returns the handler for s's routes; log gets one line per request.
func NewAPI(s *template.Stack, invoker Invoker, log *slog.Logger) *API {
	return &API{
		template:    s,
		router:      NewRouter(s.Routes),
		authorizers: s.Authorizers,
		invoker:     invoker,
		log:         log,
		now:         time.Now,
		cache:       map[[32]byte]authVerdict{},
	}
}

// API Gateway's own answers.
var (
	msgNotFound        = `{"message":"Not Found"}`
	msgUnauthorized    = `{"message":"Unauthorized"}`
	msgForbidden       = `{"message":"Forbidden"}`
	msgInternal        = `{"message":"Internal Server Error"}`
	msgTooMany         = `{"message":"Too Many Requests"}`
	msgTooLarge        = `{"message":"Request Entity Too Large"}`
	msgUnavailable     = `{"message":"Service Unavailable"}`
	errAuthorizerReply = errors.New("authorizer response is not a valid simple or IAM response")
)

// logEntry collects what the request line reports.
type logEntry struct {
	function string
	init     []string // "Function=12.3ms" per cold start
}

// ServeHTTP answers one request and logs one line for it: method, path
// (never the query string), status, function, duration and any init.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := a.now()
	var entry logEntry
	status := a.serve(w, r, start, &entry)
	// The path only: the query string and headers may hold keys and tokens.
	attrs := []any{"method", r.Method, "path", r.URL.EscapedPath(), "status", status}
	if entry.function != "" {
		attrs = append(attrs, "function", entry.function)
	}
	attrs = append(attrs, "duration", time.Since(start).Round(10*time.Microsecond).String())
	if len(entry.init) > 0 {
		attrs = append(attrs, "init", strings.Join(entry.init, ","))
	}
	a.log.Info("request", attrs...)
}

func writeGateway(w http.ResponseWriter, status int, body string, requestID string) int {
	w.Header().Set("Content-Type", "application/json")
	if requestID != "" {
		w.Header().Set("Apigw-Requestid", requestID)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
	return status
}

func (a *API) serve(w http.ResponseWriter, r *http.Request, now time.Time, entry *logEntry) int {
	requestID := NewRequestID()
	route, params, ok := a.router.Match(r.Method, r.URL.Path)
	if !ok {
		return writeGateway(w, http.StatusNotFound, msgNotFound, requestID)
	}
	entry.function = route.Function
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		var netErr net.Error
		switch {
		case errors.As(err, &tooLarge):
			return writeGateway(w, http.StatusRequestEntityTooLarge, msgTooLarge, requestID)
		case errors.As(err, &netErr) && netErr.Timeout():
			// The body did not arrive within the server's read timeout
			// (NewHTTPServer); the connection is closed after this answer.
			return writeGateway(w, http.StatusRequestTimeout, `{"message":"Request Timeout"}`, requestID)
		}
		return writeGateway(w, http.StatusBadRequest, `{"message":"Bad Request"}`, requestID)
	}
	req := &Request{HTTP: r, Body: body, Route: route, PathParams: params, RequestID: requestID, Time: now}

	var authContext map[string]any
	if route.Authorizer != "" {
		status, ctx := a.authorize(r.Context(), req, entry)
		if status != 0 {
			switch status {
			case http.StatusUnauthorized:
				return writeGateway(w, status, msgUnauthorized, requestID)
			case http.StatusForbidden:
				return writeGateway(w, status, msgForbidden, requestID)
			case http.StatusTooManyRequests:
				return writeGateway(w, status, msgTooMany, requestID)
			default:
				return writeGateway(w, http.StatusInternalServerError, msgInternal, requestID)
			}
		}
		authContext = ctx
	}

	if !a.permitted(route.Function, template.RouteResource(route), "") {
		return writeGateway(w, http.StatusInternalServerError, msgInternal, requestID)
	}
	payload, err := MarshalEvent(BuildEvent(req, authContext))
	if err != nil {
		a.log.Error("build event", "function", route.Function, "err", err)
		return writeGateway(w, http.StatusInternalServerError, msgInternal, requestID)
	}
	inv, err := a.invoker.Invoke(r.Context(), route.Function, payload)
	if status, body := invokeFailure(err); status != 0 {
		if status == http.StatusInternalServerError {
			a.log.Warn("function failed", "function", route.Function, "err", err)
		}
		return writeGateway(w, status, body, requestID)
	}
	if inv.Cold {
		entry.init = append(entry.init, fmt.Sprintf("%s=%s", route.Function, inv.InitDuration.Round(10*time.Microsecond)))
	}
	resp, err := MapResponse(inv.Payload)
	if err != nil {
		a.log.Warn("function response", "function", route.Function, "err", err)
		return writeGateway(w, http.StatusInternalServerError, msgInternal, requestID)
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	if w.Header().Get("Content-Type") == "" {
		// API Gateway adds no content type; keep Go from sniffing one.
		w.Header()["Content-Type"] = nil
	}
	w.Header().Set("Apigw-Requestid", requestID)
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
	return resp.Status
}

// invokeFailure maps an Invoke error to API Gateway's status and body; 0
// when there is no error.
func invokeFailure(err error) (int, string) {
	var fe *FunctionError
	switch {
	case err == nil:
		return 0, ""
	case errors.Is(err, ErrTooManyRequests):
		return http.StatusTooManyRequests, msgTooMany
	case errors.Is(err, ErrClosed), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, msgUnavailable
	case errors.As(err, &fe):
		return http.StatusInternalServerError, msgInternal
	default:
		return http.StatusInternalServerError, msgInternal
	}
}

// authorize runs the route's authorizer. It returns 0 and the authorizer
// context when allowed, else the status API Gateway answers.
func (a *API) authorize(ctx context.Context, req *Request, entry *logEntry) (int, map[string]any) {
	az := a.authorizers[req.Route.Authorizer]
	identity := make([]string, 0, len(az.IdentityHeaders)+len(az.IdentityQueryStrings))
	for _, h := range az.IdentityHeaders {
		v := req.HTTP.Header.Values(h)
		if len(v) == 0 || strings.Join(v, "") == "" {
			return http.StatusUnauthorized, nil
		}
		identity = append(identity, strings.Join(v, ","))
	}
	query := req.HTTP.URL.Query()
	for _, q := range az.IdentityQueryStrings {
		v := query[q]
		if len(v) == 0 || strings.Join(v, "") == "" {
			return http.StatusUnauthorized, nil
		}
		identity = append(identity, strings.Join(v, ","))
	}

	if !a.permitted(az.Function, template.AuthorizerResource(az.Name), az.Name) {
		return http.StatusInternalServerError, nil
	}

	// The cache key is a hash: the runner keeps no access token in memory.
	var key [32]byte
	caching := az.ReauthorizeEvery > 0 && len(identity) > 0
	if caching {
		key = sha256.Sum256([]byte(az.Name + "\x00" + strings.Join(identity, "\x00")))
		a.mu.Lock()
		v, ok := a.cache[key]
		a.mu.Unlock()
		if ok && a.now().Before(v.expires) {
			return verdictStatus(v)
		}
	}

	payload, err := MarshalEvent(BuildAuthorizerEvent(req, identity))
	if err != nil {
		return http.StatusInternalServerError, nil
	}
	inv, err := a.invoker.Invoke(ctx, az.Function, payload)
	if status, _ := invokeFailure(err); status != 0 {
		if status == http.StatusInternalServerError {
			a.log.Warn("authorizer failed", "function", az.Function, "err", err)
		}
		return status, nil
	}
	if inv.Cold {
		entry.init = append(entry.init, fmt.Sprintf("%s=%s", az.Function, inv.InitDuration.Round(10*time.Microsecond)))
	}
	v, err := parseVerdict(inv.Payload, az.SimpleResponses)
	if err != nil {
		a.log.Warn("authorizer response", "function", az.Function, "err", err)
		return http.StatusInternalServerError, nil
	}
	if caching {
		v.expires = a.now().Add(az.ReauthorizeEvery)
		a.mu.Lock()
		a.cache[key] = v
		a.mu.Unlock()
	}
	return verdictStatus(v)
}

// permitted reports whether a Lambda permission lets API Gateway invoke
// function for resource (a route's or an authorizer's); when none does it
// logs why, as the 500 alone does not say.
func (a *API) permitted(function, resource, authorizer string) bool {
	caller := template.APIGatewayCaller(resource)
	if _, ok := a.template.Allowing(function, caller); ok {
		return true
	}
	attrs := []any{"function", function, "principal", caller.Principal, "source_arn", caller.SourceARN}
	if authorizer != "" {
		attrs = append(attrs, "hint", "SAM gives API Gateway permission to invoke an HttpApi Lambda authorizer only with EnableFunctionDefaultPermissions: true, or add an AWS::Lambda::Permission")
	}
	a.log.Error("no Lambda permission lets API Gateway invoke the function: AWS answers 500", attrs...)
	return false
}

func verdictStatus(v authVerdict) (int, map[string]any) {
	if !v.allowed {
		return http.StatusForbidden, nil
	}
	return 0, v.context
}

// parseVerdict reads a simple response ({"isAuthorized", "context"}) or,
// when simple responses are off, an IAM policy response.
func parseVerdict(payload []byte, simple bool) (authVerdict, error) {
	if simple {
		var r struct {
			IsAuthorized *bool          `json:"isAuthorized"`
			Context      map[string]any `json:"context"`
		}
		if err := json.Unmarshal(payload, &r); err != nil || r.IsAuthorized == nil {
			return authVerdict{}, errAuthorizerReply
		}
		return authVerdict{allowed: *r.IsAuthorized, context: r.Context}, nil
	}
	var r events.APIGatewayV2CustomAuthorizerIAMPolicyResponse
	if err := json.Unmarshal(payload, &r); err != nil || len(r.PolicyDocument.Statement) == 0 {
		return authVerdict{}, errAuthorizerReply
	}
	allowed := false
	for _, st := range r.PolicyDocument.Statement {
		switch strings.ToLower(st.Effect) {
		case "deny":
			return authVerdict{context: r.Context}, nil
		case "allow":
			allowed = true
		}
	}
	return authVerdict{allowed: allowed, context: r.Context}, nil
}
