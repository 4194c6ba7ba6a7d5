package stack

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/llmgw/token-service/tools/template"
)

// DynamoDB Local ignores IAM, so a function whose template policy lacks
// an action its code calls works locally and fails in AWS. The runner puts
// one IAMProxy per function between it and DynamoDB Local: the proxy
// answers what DynamoDB answers (400 AccessDeniedException) to a request
// the function's template Policies do not allow, and forwards the others.

// targetPrefix starts the X-Amz-Target header of DynamoDB's JSON protocol.
const targetPrefix = "DynamoDB_20120810."

// maxRequestBody bounds what the proxy buffers (DynamoDB's own limit on a
// request is 16 MB).
const maxRequestBody = 16 << 20

// IAMProxy enforces one function's DynamoDB policy in front of DynamoDB
// (Local).
type IAMProxy struct {
	fn       *template.Function
	upstream *httputil.ReverseProxy
	log      io.Writer
	ln       net.Listener
	srv      *http.Server
}

// NewIAMProxy returns the handler for fn in front of the DynamoDB at
// upstream; denials are logged to log as one line each. Serve it with
// Start or use it as an http.Handler.
func NewIAMProxy(fn *template.Function, upstream string, log io.Writer) (*IAMProxy, error) {
	u, err := url.Parse(upstream)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("iam proxy for %s: bad DynamoDB endpoint %q", fn.LogicalID, upstream)
	}
	if log == nil {
		log = io.Discard
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		http.Error(w, "iam proxy: dynamodb unreachable: "+err.Error(), http.StatusBadGateway)
	}
	return &IAMProxy{fn: fn, upstream: rp, log: log}, nil
}

// Start serves the proxy on a free loopback port.
func (p *IAMProxy) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("iam proxy for %s: %w", p.fn.LogicalID, err)
	}
	p.ln = ln
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return nil
}

// Endpoint is the proxy's URL (after Start), the function's
// AWS_ENDPOINT_URL_DYNAMODB.
func (p *IAMProxy) Endpoint() string { return "http://" + p.ln.Addr().String() }

// Close stops serving.
func (p *IAMProxy) Close() error {
	if p.srv == nil {
		return nil
	}
	return p.srv.Close()
}

// ServeHTTP checks the request against the function's policy and forwards
// it or answers AccessDeniedException.
func (p *IAMProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	if !ok || op == "" || r.Method != http.MethodPost {
		// Not a DynamoDB API call (health checks, ...): DynamoDB Local answers.
		p.upstream.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		http.Error(w, "iam proxy: read request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxRequestBody {
		http.Error(w, "iam proxy: request too large", http.StatusRequestEntityTooLarge)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	checks, err := requiredPermissions(op, body)
	if err != nil {
		// Let DynamoDB Local report the malformed request as it does.
		p.upstream.ServeHTTP(w, r)
		return
	}
	for _, c := range checks {
		allowed, explicit := p.fn.DynamoDBAllowed(c.action, c.resource)
		if allowed {
			continue
		}
		p.deny(w, c, explicit)
		return
	}
	p.upstream.ServeHTTP(w, r)
}

// permission is one action on one resource a request needs.
type permission struct{ action, resource string }

// request is the part of a DynamoDB request that names its resources.
type request struct {
	TableName     string                     `json:"TableName"`
	IndexName     string                     `json:"IndexName"`
	RequestItems  map[string]json.RawMessage `json:"RequestItems"`
	TransactItems []map[string]struct {
		TableName string `json:"TableName"`
	} `json:"TransactItems"`
}

// transactActions are the IAM actions of the parts of TransactWriteItems
// and TransactGetItems (which are no IAM actions themselves).
var transactActions = map[string]string{
	"Put":            "dynamodb:PutItem",
	"Update":         "dynamodb:UpdateItem",
	"Delete":         "dynamodb:DeleteItem",
	"ConditionCheck": "dynamodb:ConditionCheckItem",
	"Get":            "dynamodb:GetItem",
}

// requiredPermissions lists what IAM checks for operation op with body:
// the operation on its table (or index, for Query and Scan with an
// IndexName), each table of a batch, each part of a transaction, and "*"
// for operations on no table (ListTables, ...).
func requiredPermissions(op string, body []byte) ([]permission, error) {
	var req request
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, err
		}
	}
	action := "dynamodb:" + op
	switch op {
	case "TransactWriteItems", "TransactGetItems":
		var out []permission
		for _, item := range req.TransactItems {
			kinds := make([]string, 0, len(item))
			for kind := range item {
				kinds = append(kinds, kind)
			}
			sort.Strings(kinds)
			for _, kind := range kinds {
				a, ok := transactActions[kind]
				if !ok {
					return nil, fmt.Errorf("unknown transact item %s", kind)
				}
				out = append(out, permission{a, tableResource(item[kind].TableName)})
			}
		}
		if len(out) == 0 {
			return nil, errors.New("empty transaction")
		}
		return out, nil
	case "BatchGetItem", "BatchWriteItem":
		tables := make([]string, 0, len(req.RequestItems))
		for t := range req.RequestItems {
			tables = append(tables, t)
		}
		sort.Strings(tables)
		var out []permission
		for _, t := range tables {
			out = append(out, permission{action, tableResource(t)})
		}
		if len(out) == 0 {
			return nil, errors.New("empty batch")
		}
		return out, nil
	}
	if req.TableName == "" {
		return []permission{{action, "*"}}, nil
	}
	res := tableResource(req.TableName)
	if req.IndexName != "" && (op == "Query" || op == "Scan") {
		res += "/index/" + req.IndexName
	}
	return []permission{{action, res}}, nil
}

// tableResource is the ARN of a table given by name or ARN.
func tableResource(table string) string {
	if strings.HasPrefix(table, "arn:") {
		return table
	}
	return template.TableARN(table)
}

// deny answers as DynamoDB does when IAM refuses, and logs one line.
func (p *IAMProxy) deny(w http.ResponseWriter, c permission, explicit bool) {
	why := "because no identity-based policy allows the " + c.action + " action"
	if explicit {
		why = "with an explicit deny in an identity-based policy"
	}
	msg := fmt.Sprintf("User: arn:aws:sts::%s:assumed-role/%s/local is not authorized to perform: %s on resource: %s %s",
		template.AccountID, p.fn.LogicalID, c.action, c.resource, why)
	body, _ := json.Marshal(map[string]string{
		"__type":  "com.amazon.coral.service#AccessDeniedException",
		"Message": msg,
	})
	writeLine(p.log, fmt.Sprintf("IAM: %s denied %s on %s (add it to the function's Policies in the template; -no-iam turns the check off)",
		p.fn.LogicalID, c.action, c.resource))
	var id [16]byte
	_, _ = rand.Read(id[:])
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.0")
	h.Set("X-Amzn-ErrorType", "AccessDeniedException")
	h.Set("X-Amzn-RequestId", strings.ToUpper(hex.EncodeToString(id[:])))
	h.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write(body)
}
