package stack_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"

	"github.com/llmgw/token-service/tools/stack"
	"github.com/llmgw/token-service/tools/stacktest"
	"github.com/llmgw/token-service/tools/template"
)

// lambdaStack is the test stack behind the Lambda Invoke API.
type lambdaStack struct {
	*testStack
	lambdaURL string
	lambdaLog *stacktest.SyncBuffer
	client    *lambda.Client
}

func startLambdaStack(t *testing.T, maxInstances int) *lambdaStack {
	t.Helper()
	ts := startTestStack(t, maxInstances, nil)
	ls := &lambdaStack{testStack: ts, lambdaLog: &stacktest.SyncBuffer{}}
	srv := httptest.NewServer(stack.NewLambdaAPI(ts.tmpl, ts.stack.Pools.Names(), stack.InvokePrincipal(ts.tmpl), ts.stack.Pools,
		slog.New(slog.NewTextHandler(ls.lambdaLog, nil))))
	t.Cleanup(srv.Close)
	ls.lambdaURL = srv.URL
	ls.client = newLambdaClient(srv.URL)
	return ls
}

// newLambdaClient is the AWS SDK's Lambda client pointed at url, signing
// with made-up credentials, without retries (each call is one request).
func newLambdaClient(url string) *lambda.Client {
	return lambda.New(lambda.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		Retryer:      aws.NopRetryer{},
	})
}

// echoEvent is an event the test function reads as an HTTP API event.
func echoEvent(routeKey, do string, sleepMs int) []byte {
	q := map[string]string{}
	if do != "" {
		q["do"] = do
	}
	if sleepMs > 0 {
		q["sleep"] = strconv.Itoa(sleepMs)
	}
	b, _ := json.Marshal(map[string]any{"routeKey": routeKey, "rawPath": "/via-invoke", "queryStringParameters": q})
	return b
}

func TestLambdaInvokeAPI(t *testing.T) {
	ls := startLambdaStack(t, 2)
	ctx := context.Background()

	t.Run("payload of the function", func(t *testing.T) {
		out, err := ls.client.Invoke(ctx, &lambda.InvokeInput{
			FunctionName: aws.String("EchoFunction"),
			Payload:      echoEvent("INVOKE sync", "", 0),
		})
		if err != nil {
			t.Fatal(err)
		}
		if out.StatusCode != 200 || out.FunctionError != nil || aws.ToString(out.ExecutedVersion) != "$LATEST" {
			t.Errorf("status %d, function error %v, version %q; want 200, none, $LATEST",
				out.StatusCode, aws.ToString(out.FunctionError), aws.ToString(out.ExecutedVersion))
		}
		var resp struct {
			StatusCode int    `json:"statusCode"`
			Body       string `json:"body"`
		}
		if err := json.Unmarshal(out.Payload, &resp); err != nil {
			t.Fatalf("payload %s: %v", out.Payload, err)
		}
		var e echo
		if err := json.Unmarshal([]byte(resp.Body), &e); err != nil {
			t.Fatalf("echo %s: %v", resp.Body, err)
		}
		if resp.StatusCode != 200 || e.Event.RouteKey != "INVOKE sync" || e.Event.RawPath != "/via-invoke" {
			t.Errorf("function saw routeKey %q rawPath %q (status %d), want the event as sent",
				e.Event.RouteKey, e.Event.RawPath, resp.StatusCode)
		}
	})

	t.Run("function names", func(t *testing.T) {
		tests := []struct {
			name, function, qualifier string
			wantFound                 bool
		}{
			{"logical id", "EchoFunction", "", true},
			{"ARN", template.FunctionARN("EchoFunction"), "", true},
			{"ARN with $LATEST", template.FunctionARN("EchoFunction") + ":$LATEST", "", true},
			{"partial ARN", "123456789012:function:EchoFunction", "", true},
			{"deployed name", "token-service-EchoFunction-Ab12Cd34Ef56", "", true},
			{"name ending in the id", "dev-EchoFunction", "", true},
			{"qualifier $LATEST", "EchoFunction", "$LATEST", true},
			{"other qualifier", "EchoFunction", "prod", false},
			{"unknown", "NoSuchFunction", "", false},
			{"unknown ARN", template.FunctionARN("NoSuchFunction"), "", false},
			{"id as a prefix only", "EchoFunctionX", "", false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				in := &lambda.InvokeInput{FunctionName: aws.String(tt.function), Payload: echoEvent("INVOKE names", "", 0)}
				if tt.qualifier != "" {
					in.Qualifier = aws.String(tt.qualifier)
				}
				out, err := ls.client.Invoke(ctx, in)
				if tt.wantFound {
					if err != nil || out.StatusCode != 200 {
						t.Fatalf("Invoke(%s) = %v, want 200", tt.function, err)
					}
					return
				}
				var nf *types.ResourceNotFoundException
				if !errors.As(err, &nf) {
					t.Fatalf("Invoke(%s) error %v (%T), want *types.ResourceNotFoundException", tt.function, err, err)
				}
				if !strings.HasPrefix(nf.ErrorMessage(), "Function not found: arn:aws:lambda:") || aws.ToString(nf.Type) != "User" {
					t.Errorf("message %q type %q, want Function not found: <arn>, User", nf.ErrorMessage(), aws.ToString(nf.Type))
				}
			})
		}
	})

	t.Run("function errors", func(t *testing.T) {
		tests := []struct {
			name, do, wantType, wantMessage string
		}{
			{"returned error", "error", "errorString", "failing on purpose"},
			{"crash", "crash", "Runtime.ExitError", "Runtime exited"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				out, err := ls.client.Invoke(ctx, &lambda.InvokeInput{
					FunctionName: aws.String("EchoFunction"),
					Payload:      echoEvent("INVOKE error", tt.do, 0),
				})
				if err != nil {
					t.Fatalf("Invoke: %v, want a 200 with a function error", err)
				}
				var doc struct {
					Type    string `json:"errorType"`
					Message string `json:"errorMessage"`
				}
				if err := json.Unmarshal(out.Payload, &doc); err != nil {
					t.Fatalf("payload %s: %v", out.Payload, err)
				}
				if out.StatusCode != 200 || aws.ToString(out.FunctionError) != "Unhandled" ||
					doc.Type != tt.wantType || !strings.Contains(doc.Message, tt.wantMessage) {
					t.Errorf("status %d, function error %q, payload %s; want 200, Unhandled, %s with %q",
						out.StatusCode, aws.ToString(out.FunctionError), out.Payload, tt.wantType, tt.wantMessage)
				}
			})
		}
		// The failed instance was replaced.
		if _, err := ls.client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("EchoFunction"), Payload: echoEvent("INVOKE after", "", 0)}); err != nil {
			t.Errorf("invoke after the failures: %v", err)
		}
	})

	t.Run("dry run", func(t *testing.T) {
		out, err := ls.client.Invoke(ctx, &lambda.InvokeInput{
			FunctionName:   aws.String("EchoFunction"),
			InvocationType: types.InvocationTypeDryRun,
			Payload:        echoEvent("INVOKE dry run", "", 0),
		})
		if err != nil || out.StatusCode != 204 || len(out.Payload) != 0 {
			t.Fatalf("DryRun: %v, status %d payload %q; want 204, empty", err, statusOf(out), payloadOf(out))
		}
		_, err = ls.client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("Nope"), InvocationType: types.InvocationTypeDryRun})
		var nf *types.ResourceNotFoundException
		if !errors.As(err, &nf) {
			t.Errorf("DryRun of an unknown function: %v, want ResourceNotFoundException", err)
		}
		time.Sleep(200 * time.Millisecond)
		if strings.Contains(ls.out.String(), "handling INVOKE dry run") {
			t.Error("DryRun ran the function")
		}
	})

	t.Run("event", func(t *testing.T) {
		start := time.Now()
		out, err := ls.client.Invoke(ctx, &lambda.InvokeInput{
			FunctionName:   aws.String("EchoFunction"),
			InvocationType: types.InvocationTypeEvent,
			Payload:        echoEvent("INVOKE event", "", 1000),
		})
		if err != nil || out.StatusCode != 202 || len(out.Payload) != 0 {
			t.Fatalf("Event: %v, status %d payload %q; want 202, empty", err, statusOf(out), payloadOf(out))
		}
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Errorf("Event answered after %s: it waited for the function (1s)", d)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(ls.out.String(), "handling INVOKE event") {
			if time.Now().After(deadline) {
				t.Fatal("the Event invocation never ran")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		_, err := ls.client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("EchoFunction"), Payload: []byte("{not json")})
		var bad *types.InvalidRequestContentException
		if !errors.As(err, &bad) {
			t.Errorf("invalid JSON: %v (%T), want InvalidRequestContentException", err, err)
		}
		tests := []struct {
			name, method, path, invocationType string
			wantStatus                         int
			wantType                           string
		}{
			{"unknown invocation type", "POST", "/2015-03-31/functions/EchoFunction/invocations", "Later", 400, "InvalidParameterValueException"},
			{"GET", "GET", "/2015-03-31/functions/EchoFunction/invocations", "", 404, "UnknownOperationException"},
			{"other path", "POST", "/2015-03-31/functions/EchoFunction", "", 404, "UnknownOperationException"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				req, err := http.NewRequest(tt.method, ls.lambdaURL+tt.path, strings.NewReader("{}"))
				if err != nil {
					t.Fatal(err)
				}
				if tt.invocationType != "" {
					req.Header.Set("X-Amz-Invocation-Type", tt.invocationType)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tt.wantStatus || resp.Header.Get("X-Amzn-Errortype") != tt.wantType {
					t.Errorf("status %d type %q, want %d %q", resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), tt.wantStatus, tt.wantType)
				}
			})
		}
	})

	t.Run("log lines", func(t *testing.T) {
		secret := "sk-SecretPayloadThatMustNotBeLogged"
		if _, err := ls.client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("EchoFunction"),
			Payload: []byte(`{"routeKey":"INVOKE log","body":"` + secret + `"}`)}); err != nil {
			t.Fatal(err)
		}
		log := ls.lambdaLog.String()
		if strings.Contains(log, secret) {
			t.Error("the request log holds the payload")
		}
		for _, want := range []string{"msg=invoke status=200 function=EchoFunction type=RequestResponse",
			"type=Event", "type=DryRun", "status=404", "function_error=error", "init="} {
			if !strings.Contains(log, want) {
				t.Errorf("request log lacks %q:\n%s", want, log)
			}
		}
	})
}

func statusOf(out *lambda.InvokeOutput) int32 {
	if out == nil {
		return 0
	}
	return out.StatusCode
}

func payloadOf(out *lambda.InvokeOutput) []byte {
	if out == nil {
		return nil
	}
	return out.Payload
}

func TestLambdaInvokeAPIThrottles(t *testing.T) {
	ls := startLambdaStack(t, 1)
	// Timeout is 2s. A holds the one instance 0-1.5s, B waits and holds it
	// 1.5-3s, C waits from 0.2s and gives up at 2.2s.
	type res struct {
		name string
		out  *lambda.InvokeOutput
		err  error
	}
	results := make(chan res, 3)
	send := func(name string, delay time.Duration, sleepMs int) {
		time.Sleep(delay)
		out, err := ls.client.Invoke(context.Background(), &lambda.InvokeInput{
			FunctionName: aws.String("EchoFunction"),
			Payload:      echoEvent("INVOKE "+name, "", sleepMs),
		})
		results <- res{name, out, err}
	}
	go send("A", 0, 1500)
	go send("B", 100*time.Millisecond, 1500)
	go send("C", 200*time.Millisecond, 0)
	got := map[string]res{}
	for range 3 {
		r := <-results
		got[r.name] = r
	}
	for _, name := range []string{"A", "B"} {
		if r := got[name]; r.err != nil || r.out.StatusCode != 200 || r.out.FunctionError != nil {
			t.Errorf("%s: %v, want 200 (it waits its turn)", name, r.err)
		}
	}
	var tooMany *types.TooManyRequestsException
	if err := got["C"].err; !errors.As(err, &tooMany) {
		t.Fatalf("C: %v (%T), want *types.TooManyRequestsException", err, err)
	}
	if tooMany.Reason == "" || aws.ToString(tooMany.Type) != "User" {
		t.Errorf("C: reason %q type %q, want a reason and User", tooMany.Reason, aws.ToString(tooMany.Type))
	}
}

// The Invoke API acts as one principal and serves only the functions a
// template permission opens to it: by default the relay's role, which the
// test template lets invoke EchoFunction alone.
func TestLambdaInvokePermissions(t *testing.T) {
	ts := startTestStack(t, 1, nil)
	noRelay, err := template.Load("testdata/template.yaml", template.Options{
		ParameterOverrides: map[string]string{"Secret": "s", "RelayRoleArn": ""},
		TableNames:         map[string]string{"Table": "items"},
	})
	if err != nil {
		t.Fatal(err)
	}
	other := template.RoleARN("other")
	tests := []struct {
		name           string
		tmpl           *template.Stack
		principal      string
		function       string
		invocationType types.InvocationType
		wantStatus     int
		wantType       string // x-amzn-ErrorType
	}{
		{"relay invokes its function", ts.tmpl, stack.DevRelayRoleARN, "EchoFunction", "", 200, ""},
		{"relay invokes the authorizer", ts.tmpl, stack.DevRelayRoleARN, "AuthFunction", "", 403, "AccessDeniedException"},
		{"relay dry run of the authorizer", ts.tmpl, stack.DevRelayRoleARN, "AuthFunction", types.InvocationTypeDryRun, 403, "AccessDeniedException"},
		{"relay event to the authorizer", ts.tmpl, stack.DevRelayRoleARN, "AuthFunction", types.InvocationTypeEvent, 403, "AccessDeniedException"},
		{"unknown function", ts.tmpl, stack.DevRelayRoleARN, "NoSuchFunction", "", 404, "ResourceNotFoundException"},
		{"another role", ts.tmpl, other, "EchoFunction", "", 403, "AccessDeniedException"},
		{"RelayRoleArn empty: no permission", noRelay, stack.DevRelayRoleARN, "EchoFunction", "", 403, "AccessDeniedException"},
		{"default principal with RelayRoleArn empty", noRelay, stack.InvokePrincipal(noRelay), "EchoFunction", "", 403, "AccessDeniedException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := &stacktest.SyncBuffer{}
			srv := httptest.NewServer(stack.NewLambdaAPI(tt.tmpl, ts.stack.Pools.Names(), tt.principal, ts.stack.Pools,
				slog.New(slog.NewTextHandler(log, nil))))
			defer srv.Close()
			req, err := http.NewRequest("POST", srv.URL+"/2015-03-31/functions/"+tt.function+"/invocations",
				strings.NewReader(string(echoEvent("INVOKE permissions", "", 0))))
			if err != nil {
				t.Fatal(err)
			}
			if tt.invocationType != "" {
				req.Header.Set("X-Amz-Invocation-Type", string(tt.invocationType))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("X-Amzn-Errortype") != tt.wantType {
				t.Fatalf("status %d type %q (%s), want %d %q", resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), body, tt.wantStatus, tt.wantType)
			}
			if tt.wantType != "AccessDeniedException" {
				return
			}
			want := `{"Type":"User","message":"User: ` + tt.principal + ` is not authorized to perform: lambda:InvokeFunction on resource: ` +
				template.FunctionARN(tt.function) + ` because no resource-based policy allows the lambda:InvokeFunction action"}`
			if string(body) != want {
				t.Errorf("body %s\nwant %s", body, want)
			}
			if !strings.Contains(log.String(), "msg=invoke status=403 function="+tt.function) {
				t.Errorf("no 403 request line in:\n%s", log.String())
			}
		})
	}

	// The AWS SDK sees Lambda's AccessDeniedException.
	srv := httptest.NewServer(stack.NewLambdaAPI(ts.tmpl, ts.stack.Pools.Names(), stack.DevRelayRoleARN, ts.stack.Pools,
		slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	_, err = newLambdaClient(srv.URL).Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("AuthFunction"), Payload: []byte(`{}`)})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDeniedException" || !strings.HasPrefix(apiErr.ErrorMessage(), "User: "+stack.DevRelayRoleARN) {
		t.Errorf("SDK error %v (%T), want AccessDeniedException naming the principal", err, err)
	}
}
