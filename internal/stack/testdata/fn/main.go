// Command fn is the stack runner's test function. As an HTTP handler (payload
// 2.0) it obeys the query parameter "do": echo (default) answers 200 with the
// event it received, sleep=<ms> sleeps first, crash exits the process, error
// returns a function error. With MODE=authorizer in its environment it is a
// simple-response REQUEST authorizer that allows "Bearer good", refuses
// anything else and fails on "Bearer fail".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

var calls atomic.Int64

func main() {
	fmt.Println("test function init, pid", os.Getpid())
	if os.Getenv("MODE") == "authorizer" {
		lambda.Start(authorize)
		return
	}
	lambda.Start(handle)
}

func authorize(_ context.Context, req events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
	n := calls.Add(1)
	switch req.Headers["authorization"] {
	case "Bearer good":
		return events.APIGatewayV2CustomAuthorizerSimpleResponse{
			IsAuthorized: true,
			Context:      map[string]any{"userId": "u1", "calls": n},
		}, nil
	case "Bearer fail":
		return events.APIGatewayV2CustomAuthorizerSimpleResponse{}, errors.New("authorizer failed on purpose")
	}
	return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: false}, nil
}

// reply is what echo answers.
type reply struct {
	PID   int                            `json:"pid"`
	Calls int64                          `json:"calls"`
	Env   map[string]string              `json:"env"`
	Event events.APIGatewayV2HTTPRequest `json:"event"`
}

func handle(_ context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	n := calls.Add(1)
	q := req.QueryStringParameters
	fmt.Println("handling", req.RouteKey, "do="+q["do"])
	if ms, err := strconv.Atoi(q["sleep"]); err == nil {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	switch q["do"] {
	case "crash":
		fmt.Fprintln(os.Stderr, "crashing on purpose")
		os.Exit(3)
	case "error":
		return events.APIGatewayV2HTTPResponse{}, errors.New("failing on purpose")
	case "binary":
		return events.APIGatewayV2HTTPResponse{
			StatusCode:      201,
			Headers:         map[string]string{"Content-Type": "application/octet-stream"},
			Cookies:         []string{"a=1", "b=2"},
			Body:            "AAEC/w==",
			IsBase64Encoded: true,
		}, nil
	}
	env := map[string]string{}
	for _, k := range []string{"TABLE_NAME", "LOG_LEVEL", "GREETING", "AWS_LAMBDA_FUNCTION_NAME",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_REGION", "SECRET"} {
		env[k] = os.Getenv(k)
	}
	body, err := json.Marshal(reply{PID: os.Getpid(), Calls: n, Env: env, Event: req})
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	return events.APIGatewayV2HTTPResponse{
		StatusCode:        200,
		Headers:           map[string]string{"Content-Type": "application/json"},
		MultiValueHeaders: map[string][]string{"X-Multi": {"1", "2"}},
		Body:              string(body),
	}, nil
}
