package stack

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/llmgw/token-service/tools/template"
)

// Request is what the runner knows of one HTTP request once routed.
type Request struct {
	HTTP       *http.Request
	Body       []byte
	Route      template.Route
	PathParams map[string]string
	RequestID  string
	Time       time.Time
}

// NewRequestID returns an id shaped like API Gateway's HTTP API request ids
// (16 base64 characters, e.g. "JfHKjhfgHAMEJxA=").
func NewRequestID() string {
	var b [11]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// requestContext builds the payload 2.0 requestContext, without authorizer.
func requestContext(req *Request) events.APIGatewayV2HTTPRequestContext {
	r := req.HTTP
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	sourceIP := r.RemoteAddr
	if h, _, err := net.SplitHostPort(sourceIP); err == nil {
		sourceIP = h
	}
	prefix, _, _ := strings.Cut(host, ".")
	return events.APIGatewayV2HTTPRequestContext{
		RouteKey:     req.Route.Key(),
		AccountID:    template.AccountID,
		Stage:        "$default",
		RequestID:    req.RequestID,
		APIID:        template.APIID,
		DomainName:   host,
		DomainPrefix: prefix,
		Time:         req.Time.UTC().Format("02/Jan/2006:15:04:05 -0700"),
		TimeEpoch:    req.Time.UnixMilli(),
		HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
			Method:    r.Method,
			Path:      r.URL.EscapedPath(),
			Protocol:  r.Proto,
			SourceIP:  sourceIP,
			UserAgent: r.UserAgent(),
		},
	}
}

// headersAndCookies lower-cases header names, joins repeated headers with
// commas and moves the Cookie header into a cookie list, as API Gateway's
// payload 2.0 does.
func headersAndCookies(r *http.Request) (map[string]string, []string) {
	headers := map[string]string{}
	var cookies []string
	for name, values := range r.Header {
		lower := strings.ToLower(name)
		if lower == "cookie" {
			for _, v := range values {
				for _, c := range strings.Split(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		headers[lower] = strings.Join(values, ",")
	}
	// Go keeps Host out of r.Header; API Gateway passes it on.
	if r.Host != "" {
		headers["host"] = r.Host
	}
	if r.ContentLength > 0 {
		if _, ok := headers["content-length"]; !ok {
			headers["content-length"] = fmt.Sprint(r.ContentLength)
		}
	}
	return headers, cookies
}

// queryParameters decodes the query string, joining repeated names with
// commas; nil when there is none.
func queryParameters(raw string) map[string]string {
	if raw == "" {
		return nil
	}
	values, err := url.ParseQuery(raw)
	if err != nil && len(values) == 0 {
		return nil
	}
	params := map[string]string{}
	for k, v := range values {
		params[k] = strings.Join(v, ",")
	}
	return params
}

// isTextBody reports whether API Gateway passes a body as text rather than
// base64: a textual content type and valid UTF-8.
func isTextBody(contentType string, body []byte) bool {
	if !utf8.Valid(body) {
		return false
	}
	if contentType == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		mt == "application/json", strings.HasSuffix(mt, "+json"),
		mt == "application/xml", strings.HasSuffix(mt, "+xml"),
		mt == "application/javascript", mt == "application/x-www-form-urlencoded",
		mt == "application/graphql", mt == "application/x-yaml", mt == "application/yaml":
		return true
	}
	return false
}

// BuildEvent returns the payload 2.0 event API Gateway sends the route's
// function; authorizer is the authorizer's context (nil without one).
func BuildEvent(req *Request, authorizer map[string]any) events.APIGatewayV2HTTPRequest {
	headers, cookies := headersAndCookies(req.HTTP)
	ev := events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              req.Route.Key(),
		RawPath:               req.HTTP.URL.EscapedPath(),
		RawQueryString:        req.HTTP.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: queryParameters(req.HTTP.URL.RawQuery),
		PathParameters:        req.PathParams,
		RequestContext:        requestContext(req),
	}
	if req.Route.Authorizer != "" {
		if authorizer == nil {
			authorizer = map[string]any{}
		}
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{Lambda: authorizer}
	}
	if len(req.Body) > 0 {
		if isTextBody(req.HTTP.Header.Get("Content-Type"), req.Body) {
			ev.Body = string(req.Body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(req.Body)
			ev.IsBase64Encoded = true
		}
	}
	return ev
}

// BuildAuthorizerEvent returns the payload 2.0 REQUEST authorizer event.
func BuildAuthorizerEvent(req *Request, identity []string) events.APIGatewayV2CustomAuthorizerV2Request {
	headers, cookies := headersAndCookies(req.HTTP)
	return events.APIGatewayV2CustomAuthorizerV2Request{
		Version:               "2.0",
		Type:                  "REQUEST",
		RouteArn:              fmt.Sprintf("arn:aws:execute-api:%s:%s:%s/$default/%s%s", template.Region, template.AccountID, template.APIID, req.HTTP.Method, req.HTTP.URL.EscapedPath()),
		IdentitySource:        identity,
		RouteKey:              req.Route.Key(),
		RawPath:               req.HTTP.URL.EscapedPath(),
		RawQueryString:        req.HTTP.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: queryParameters(req.HTTP.URL.RawQuery),
		RequestContext:        requestContext(req),
		PathParameters:        req.PathParams,
	}
}

// MarshalEvent encodes an event as API Gateway would: without the empty
// mutual-TLS "authentication" block the Go type always carries.
func MarshalEvent(ev any) ([]byte, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("marshal event: %w", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("marshal event: %w", err)
	}
	var rc map[string]json.RawMessage
	if err := json.Unmarshal(top["requestContext"], &rc); err != nil {
		return b, nil
	}
	var auth events.APIGatewayV2HTTPRequestContextAuthentication
	if a, ok := rc["authentication"]; ok && json.Unmarshal(a, &auth) == nil && auth.ClientCert.ClientCertPem == "" {
		delete(rc, "authentication")
		if top["requestContext"], err = json.Marshal(rc); err != nil {
			return nil, fmt.Errorf("marshal event: %w", err)
		}
		return json.Marshal(top)
	}
	return b, nil
}

// errBadResponse is a function answer API Gateway cannot map: 500.
var errBadResponse = errors.New("malformed function response")

// Response is a function's answer mapped to HTTP.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// MapResponse turns a payload 2.0 function answer into the HTTP response
// API Gateway sends: a JSON object with statusCode is used as is; any other
// valid JSON is the body of a 200 application/json response.
func MapResponse(payload []byte) (*Response, error) {
	var probe map[string]json.RawMessage
	structured := json.Unmarshal(payload, &probe) == nil && probe["statusCode"] != nil
	if !structured {
		if !json.Valid(payload) {
			return nil, fmt.Errorf("%w: not JSON", errBadResponse)
		}
		// A JSON string is sent as its value, anything else as JSON text.
		body := payload
		var s string
		if json.Unmarshal(payload, &s) == nil {
			body = []byte(s)
		}
		return &Response{Status: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}}, Body: body}, nil
	}
	var fr events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(payload, &fr); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadResponse, err)
	}
	if fr.StatusCode < 100 || fr.StatusCode > 599 {
		return nil, fmt.Errorf("%w: status %d", errBadResponse, fr.StatusCode)
	}
	resp := &Response{Status: fr.StatusCode, Header: http.Header{}}
	for k, v := range fr.Headers {
		resp.Header.Set(k, v)
	}
	names := make([]string, 0, len(fr.MultiValueHeaders))
	for k := range fr.MultiValueHeaders {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		resp.Header.Del(k)
		for _, v := range fr.MultiValueHeaders[k] {
			resp.Header.Add(k, v)
		}
	}
	for _, c := range fr.Cookies {
		resp.Header.Add("Set-Cookie", c)
	}
	if fr.IsBase64Encoded {
		body, err := base64.StdEncoding.DecodeString(fr.Body)
		if err != nil {
			return nil, fmt.Errorf("%w: body is not base64", errBadResponse)
		}
		resp.Body = body
	} else {
		resp.Body = []byte(fr.Body)
	}
	return resp, nil
}
