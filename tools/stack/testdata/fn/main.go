// Command fn is the stack runner's test function. As an HTTP handler (payload
// 2.0) it obeys the query parameter "do": echo (default) answers 200 with the
// event it received, sleep=<ms> sleeps first, crash exits the process, error
// returns a function error, dynamo calls DynamoDB's "op" (GetItem or
// PutItem) on TABLE_NAME for the item pk=sk="id" and answers 200 with
// {"found":..,"code":..,"message":..} (code is the API error code, e.g.
// AccessDeniedException). With MODE=authorizer in its environment it is a
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
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
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

func handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
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
	case "dynamo":
		return callDynamo(ctx, q["op"], q["id"])
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
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_REGION", "SECRET",
		"AWS_SAM_LOCAL", "KMS_KEY_ID", "SEALING_KEY"} {
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

// dynamoReply is what dynamo answers.
type dynamoReply struct {
	Found   bool   `json:"found"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func callDynamo(ctx context.Context, op, id string) (events.APIGatewayV2HTTPResponse, error) {
	// From the environment the runner gives, as the product's functions
	// read it: region, credentials and the DynamoDB endpoint.
	client := dynamodb.New(dynamodb.Options{
		Region:       os.Getenv("AWS_REGION"),
		BaseEndpoint: aws.String(os.Getenv("AWS_ENDPOINT_URL_DYNAMODB")),
		Credentials: credentials.NewStaticCredentialsProvider(os.Getenv("AWS_ACCESS_KEY_ID"),
			os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN")),
	})
	table := aws.String(os.Getenv("TABLE_NAME"))
	key := map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: id},
		"sk": &types.AttributeValueMemberS{Value: id},
	}
	var out dynamoReply
	var err error
	switch op {
	case "GetItem":
		var got *dynamodb.GetItemOutput
		got, err = client.GetItem(ctx, &dynamodb.GetItemInput{TableName: table, Key: key})
		out.Found = err == nil && got.Item != nil
	case "PutItem":
		_, err = client.PutItem(ctx, &dynamodb.PutItemInput{TableName: table, Item: key})
	default:
		return events.APIGatewayV2HTTPResponse{}, fmt.Errorf("unknown op %q", op)
	}
	if err != nil {
		out.Message = err.Error()
		out.Code = "unknown"
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) {
			out.Code = apiErr.ErrorCode()
		}
	}
	body, err := json.Marshal(out)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	return events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: string(body)}, nil
}
