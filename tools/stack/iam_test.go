package stack_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/llmgw/token-service/internal/dynamotest"
	"github.com/llmgw/token-service/tools/ddblocal"
	"github.com/llmgw/token-service/tools/stack"
	"github.com/llmgw/token-service/tools/stacktest"
	"github.com/llmgw/token-service/tools/template"
)

// dynamoReply is what the test function's do=dynamo answers.
type dynamoReply struct {
	Found   bool   `json:"found"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func itemKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: id},
		"sk": &types.AttributeValueMemberS{Value: id},
	}
}

// The test function's policy (testdata/template.yaml) allows only
// dynamodb:GetItem on its table: a GetItem passes, a PutItem gets
// DynamoDB's AccessDeniedException and writes nothing, unless NoIAM.
func TestIAMEnforcedOnFunctions(t *testing.T) {
	client, table := dynamotest.NewTable(t)
	ctx := context.Background()
	if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: itemKey("seeded")}); err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.Load("testdata/template.yaml", template.Options{
		ParameterOverrides: map[string]string{"Secret": "s"},
		TableNames:         map[string]string{"Table": table},
	})
	if err != nil {
		t.Fatal(err)
	}
	tableARN := template.TableARN(table)
	tests := []struct {
		name      string
		noIAM     bool
		op, id    string
		want      dynamoReply // Message compared as a substring
		wantLog   string      // a line the runner logs; "" = no IAM line
		wantWrote bool
	}{
		{name: "allowed GetItem", op: "GetItem", id: "seeded", want: dynamoReply{Found: true}},
		{
			name: "denied PutItem", op: "PutItem", id: "denied",
			want: dynamoReply{Code: "AccessDeniedException", Message: "User: arn:aws:sts::123456789012:assumed-role/EchoFunction/local " +
				"is not authorized to perform: dynamodb:PutItem on resource: " + tableARN +
				" because no identity-based policy allows the dynamodb:PutItem action"},
			wantLog: "IAM: EchoFunction denied dynamodb:PutItem on " + tableARN,
		},
		{name: "PutItem with -no-iam", noIAM: true, op: "PutItem", id: "unchecked", wantWrote: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := &stacktest.SyncBuffer{}
			st, err := stack.Start(ctx, stack.Config{
				Template:         tmpl,
				LocalDir:         t.TempDir(),
				DynamoDBEndpoint: dynamotest.Endpoint(t),
				NoIAM:            tt.noIAM,
				Functions:        []string{"EchoFunction"},
				Output:           out,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			event, err := json.Marshal(map[string]any{
				"routeKey":              "GET /items/{id}",
				"queryStringParameters": map[string]string{"do": "dynamo", "op": tt.op, "id": tt.id},
			})
			if err != nil {
				t.Fatal(err)
			}
			inv, err := st.Pools.Invoke(ctx, "EchoFunction", event)
			if err != nil {
				t.Fatal(err)
			}
			var resp struct {
				StatusCode int    `json:"statusCode"`
				Body       string `json:"body"`
			}
			if err := json.Unmarshal(inv.Payload, &resp); err != nil || resp.StatusCode != 200 {
				t.Fatalf("function answered %s (%v)", inv.Payload, err)
			}
			var got dynamoReply
			if err := json.Unmarshal([]byte(resp.Body), &got); err != nil {
				t.Fatal(err)
			}
			if got.Found != tt.want.Found || got.Code != tt.want.Code || !strings.Contains(got.Message, tt.want.Message) {
				t.Errorf("function got %+v, want %+v", got, tt.want)
			}
			logged := strings.Contains(out.String(), "IAM: ")
			if tt.wantLog != "" && !strings.Contains(out.String(), tt.wantLog) || tt.wantLog == "" && logged {
				t.Errorf("runner output %q, want the line %q", out.String(), tt.wantLog)
			}
			if tt.op == "PutItem" {
				item, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: itemKey(tt.id), ConsistentRead: aws.Bool(true)})
				if err != nil {
					t.Fatal(err)
				}
				if wrote := item.Item != nil; wrote != tt.wantWrote {
					t.Errorf("item %s written = %v, want %v", tt.id, wrote, tt.wantWrote)
				}
			}
		})
	}
}

// The proxy checks every table, index and transaction part a request
// names, as IAM does.
func TestIAMProxyRequests(t *testing.T) {
	client, table := dynamotest.NewTable(t)
	ctx := context.Background()
	arn := template.TableARN(table)
	fn := &template.Function{LogicalID: "Fn", DynamoDBStatements: []template.Statement{
		{Effect: "Allow", Actions: []string{"dynamodb:GetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem"}, Resources: []string{arn}},
		{Effect: "Allow", Actions: []string{"dynamodb:Update*"}, Resources: []string{"*"}},
		{Effect: "Deny", Actions: []string{"dynamodb:UpdateItem"}, Resources: []string{arn}},
	}}
	proxy, err := stack.NewIAMProxy(fn, dynamotest.Endpoint(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(proxy)
	defer srv.Close()
	viaProxy := ddblocal.NewClient(srv.URL)
	if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: itemKey("a")}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		call       func() error
		wantDenied string // "" = allowed; else the denied action in the message
	}{
		{"GetItem", func() error {
			_, err := viaProxy.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: itemKey("a")})
			return err
		}, ""},
		{"Query on the table", func() error {
			_, err := viaProxy.Query(ctx, &dynamodb.QueryInput{TableName: aws.String(table),
				KeyConditionExpression: aws.String("pk = :p"), ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: "a"}}})
			return err
		}, ""},
		{"Query on an index", func() error {
			_, err := viaProxy.Query(ctx, &dynamodb.QueryInput{TableName: aws.String(table), IndexName: aws.String("by-name"),
				KeyConditionExpression: aws.String("pk = :p"), ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: "a"}}})
			return err
		}, "dynamodb:Query on resource: " + arn + "/index/by-name"},
		{"BatchGetItem", func() error {
			_, err := viaProxy.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
				table: {Keys: []map[string]types.AttributeValue{itemKey("a")}}}})
			return err
		}, "dynamodb:BatchGetItem on resource: " + arn},
		{"TransactWriteItems needs each part's action", func() error {
			_, err := viaProxy.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
				{ConditionCheck: &types.ConditionCheck{TableName: aws.String(table), Key: itemKey("a"), ConditionExpression: aws.String("attribute_exists(pk)")}},
				{Put: &types.Put{TableName: aws.String(table), Item: itemKey("b")}},
			}})
			return err
		}, "dynamodb:PutItem on resource: " + arn},
		{"explicit Deny wins", func() error {
			_, err := viaProxy.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: itemKey("a"),
				UpdateExpression: aws.String("SET n = :n"), ExpressionAttributeValues: map[string]types.AttributeValue{":n": &types.AttributeValueMemberN{Value: "1"}}})
			return err
		}, "dynamodb:UpdateItem on resource: " + arn + " with an explicit deny"},
		{"ListTables needs Resource *", func() error {
			_, err := viaProxy.ListTables(ctx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)})
			return err
		}, "dynamodb:ListTables on resource: *"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if tt.wantDenied == "" {
				if err != nil {
					t.Fatalf("got %v, want allowed", err)
				}
				return
			}
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDeniedException" {
				t.Fatalf("got %v, want an AccessDeniedException", err)
			}
			if !strings.Contains(apiErr.ErrorMessage(), "is not authorized to perform: "+tt.wantDenied) {
				t.Errorf("message %q, want it to name %q", apiErr.ErrorMessage(), tt.wantDenied)
			}
		})
	}
	got, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: itemKey("b"), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if got.Item != nil {
		t.Errorf("the denied transaction wrote item b")
	}
}
