package ddbcount_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/llmgw/token-service/internal/ddbcount"
)

// The counter counts each request once, whether or not it reaches a server:
// here the endpoint refuses connections and retries are off. A request the
// SDK refuses before sending is not counted.
func TestCounterCountsByOperation(t *testing.T) {
	var c ddbcount.Counter
	client := dynamodb.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
	}, c.Option, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String("http://127.0.0.1:1") })
	ctx := context.Background()
	table := aws.String("t")
	key := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "x"}}
	_, _ = client.GetItem(ctx, &dynamodb.GetItemInput{TableName: table, Key: key})
	_, _ = client.GetItem(ctx, &dynamodb.GetItemInput{TableName: table, Key: key})
	_, _ = client.GetItem(ctx, &dynamodb.GetItemInput{}) // invalid: refused before sending, not counted
	_, _ = client.Query(ctx, &dynamodb.QueryInput{TableName: table})

	got := c.Counts()
	if got["GetItem"] != 2 || got["Query"] != 1 || c.Total() != 3 {
		t.Fatalf("Counts = %v, Total = %d; want GetItem 2, Query 1, Total 3", got, c.Total())
	}
	c.Reset()
	if c.Total() != 0 {
		t.Fatalf("after Reset, Total = %d", c.Total())
	}
}
