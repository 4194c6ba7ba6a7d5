// Package dynamotest gives tests a fresh DynamoDB table with the project's
// schema in DynamoDB Local. It is test support: no function links it (the
// fence test in tools/ checks).
//
// The tables are created at the DynamoDB Local that DYNAMODB_TEST_ENDPOINT
// names. `make test` starts one and sets it; to run a package's tests alone,
// start one with `make dynamodb-local` and run
//
//	DYNAMODB_TEST_ENDPOINT=http://127.0.0.1:8000 go test ./internal/token/dynamo
//
// Starting DynamoDB Local (Java) is the tooling module's job
// (tools/ddblocal), so that the product module carries no process
// management.
package dynamotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// EnvEndpoint names the environment variable holding the endpoint of the
// running DynamoDB Local the tests use.
const EnvEndpoint = "DYNAMODB_TEST_ENDPOINT"

// The table's key attributes, as template.yaml declares them.
const (
	PartitionKey = "pk"
	SortKey      = "sk"
)

// Endpoint returns the DynamoDB Local endpoint the tests use; it fails t,
// saying how to get one, when DYNAMODB_TEST_ENDPOINT is unset.
func Endpoint(t testing.TB) string {
	t.Helper()
	e := os.Getenv(EnvEndpoint)
	if e == "" {
		t.Fatalf("dynamotest: %s is not set: run `make test`, or `make dynamodb-local` and %s=http://127.0.0.1:8000", EnvEndpoint, EnvEndpoint)
	}
	return e
}

// NewClient returns a DynamoDB client for a DynamoDB Local endpoint, with the
// static credentials (local/local) and region (us-east-1) it accepts: it
// refuses access keys holding '-' or '_'.
func NewClient(endpoint string) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
	})
}

// Client returns a DynamoDB client for Endpoint(t).
func Client(t testing.TB) *dynamodb.Client {
	t.Helper()
	return NewClient(Endpoint(t))
}

// NewTable creates a table with the project's schema (string pk and sk,
// PAY_PER_REQUEST), named after the test plus a random suffix, and deletes it
// when the test ends. It returns a client for it and its name.
func NewTable(t testing.TB) (*dynamodb.Client, string) {
	t.Helper()
	client := Client(t)
	name := tableName(t.Name())
	ctx := context.Background()
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(PartitionKey), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(SortKey), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(PartitionKey), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(SortKey), KeyType: types.KeyTypeRange},
		},
	})
	if err != nil {
		t.Fatalf("dynamotest: create table %s: %v", name, err)
	}
	t.Cleanup(func() {
		_, err := client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		if err != nil {
			t.Errorf("dynamotest: delete table %s: %v", name, err)
		}
	})
	waiter := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 50 * time.Millisecond
	})
	if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 30*time.Second); err != nil {
		t.Fatalf("dynamotest: table %s not active: %v", name, err)
	}
	return client, name
}

// tableName turns a test name into a valid, unique table name: the
// characters DynamoDB allows ([A-Za-z0-9_.-]), at most 200 of them, and a
// random suffix.
func tableName(testName string) string {
	var b strings.Builder
	for _, c := range testName {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 200 {
			break
		}
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	return fmt.Sprintf("%s-%s", b.String(), hex.EncodeToString(suffix[:]))
}
