package ddbcount_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/ddbcount"
	"github.com/llmgw/token-service/internal/dynamotest"
)

// CapacityOption asks for and sums the consumed capacity DynamoDB Local
// reports, per operation, and leaves the caller's input unchanged.
func TestCapacityOption(t *testing.T) {
	base, table := dynamotest.NewTable(t)
	var c ddbcount.Counter
	client := dynamodb.New(base.Options(), c.CapacityOption)
	ctx := context.Background()
	item := map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "P"}, "sk": &types.AttributeValueMemberS{Value: "S"},
	}
	put := &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}
	if _, err := client.PutItem(ctx, put); err != nil {
		t.Fatal(err)
	}
	if put.ReturnConsumedCapacity != "" {
		t.Errorf("caller's input changed: ReturnConsumedCapacity = %q", put.ReturnConsumedCapacity)
	}
	get := &dynamodb.GetItemInput{TableName: aws.String(table), Key: item, ConsistentRead: aws.Bool(true)}
	if _, err := client.GetItem(ctx, get); err != nil {
		t.Fatal(err)
	}
	tx := &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(table), Item: item}},
	}}
	if _, err := client.TransactWriteItems(ctx, tx); err != nil {
		t.Fatal(err)
	}
	got := c.Capacities()
	if got["PutItem"].Units != 1 || got["GetItem"].Units != 1 {
		t.Errorf("PutItem %+v, GetItem %+v; want 1 unit each", got["PutItem"], got["GetItem"])
	}
	if tw := got["TransactWriteItems"]; tw.TxActions != 1 || len(tw.TxPutBytes) != 1 || tw.TxPutBytes[0] != 6 || tw.Units <= 0 {
		t.Errorf("TransactWriteItems = %+v; want 1 action, one put of 6 bytes, units > 0", tw)
	}
	if c.Total() != 3 {
		t.Errorf("Total = %d, want 3", c.Total())
	}
	c.Reset()
	if len(c.Capacities()) != 0 {
		t.Errorf("after Reset, Capacities = %v", c.Capacities())
	}
}
