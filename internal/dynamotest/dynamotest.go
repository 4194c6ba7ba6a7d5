// Package dynamotest gives tests a fresh DynamoDB table with the project's
// schema in DynamoDB Local.
//
// A test package that uses it declares
//
//	func TestMain(m *testing.M) { dynamotest.Main(m) }
//
// and each test calls NewTable. When DYNAMODB_TEST_ENDPOINT is set (make test
// sets it) the tables are created there; otherwise the first NewTable of the
// test binary starts its own DynamoDB Local on a free port, and Main stops it
// when the tests are done.
package dynamotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/ddblocal"
)

// EnvEndpoint names the environment variable holding the endpoint of a
// running DynamoDB Local to use instead of starting one.
const EnvEndpoint = "DYNAMODB_TEST_ENDPOINT"

// The table's key attributes, as template.yaml declares them.
const (
	PartitionKey = "pk"
	SortKey      = "sk"
)

var (
	mu         sync.Mutex
	mainCalled bool
	instance   *ddblocal.Instance
	startErr   error
)

// Main runs the tests of m and stops the DynamoDB Local that NewTable may
// have started, then exits with the tests' code. Call it from TestMain.
func Main(m *testing.M) {
	mu.Lock()
	mainCalled = true
	mu.Unlock()
	code := m.Run()
	mu.Lock()
	if instance != nil {
		_ = instance.Stop()
		instance = nil
	}
	mu.Unlock()
	os.Exit(code)
}

// Endpoint returns the DynamoDB Local endpoint the tests use, starting one
// when DYNAMODB_TEST_ENDPOINT is unset. It fails t when none can be had.
func Endpoint(t testing.TB) string {
	t.Helper()
	if e := os.Getenv(EnvEndpoint); e != "" {
		return e
	}
	mu.Lock()
	defer mu.Unlock()
	if !mainCalled {
		t.Fatalf("dynamotest: set %s or call dynamotest.Main(m) from TestMain, which stops the DynamoDB Local it starts", EnvEndpoint)
	}
	if instance == nil && startErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		instance, startErr = ddblocal.Start(ctx, ddblocal.Options{})
	}
	if startErr != nil {
		t.Fatalf("dynamotest: %v", startErr)
	}
	return instance.Endpoint()
}

// Client returns a DynamoDB client for Endpoint(t), with the static
// credentials (local/local) and region (us-east-1) DynamoDB Local accepts.
func Client(t testing.TB) *dynamodb.Client {
	t.Helper()
	return ddblocal.NewClient(Endpoint(t))
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
