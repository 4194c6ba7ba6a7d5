package stack_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/dynamotest"
	"github.com/llmgw/token-service/tools/ddblocal"
	"github.com/llmgw/token-service/tools/stack"
	"github.com/llmgw/token-service/tools/template"
)

func TestMain(m *testing.M) { ddblocal.RunTests(m) }

func TestEnsureTable(t *testing.T) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "stack-" + hex.EncodeToString(b[:])
	tmpl, err := template.Load("testdata/template.yaml", template.Options{
		ParameterOverrides: map[string]string{"Secret": "s"},
		TableNames:         map[string]string{"Table": name},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	client := dynamotest.Client(t)
	t.Cleanup(func() { _, _ = client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)}) })

	for i, wantCreated := range []bool{true, false} {
		created, err := stack.EnsureTable(ctx, client, tmpl.Tables["Table"])
		if err != nil {
			t.Fatal(err)
		}
		if created != wantCreated {
			t.Errorf("call %d: created %v, want %v", i+1, created, wantCreated)
		}
	}
	desc, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	tbl := desc.Table
	if len(tbl.KeySchema) != 2 || aws.ToString(tbl.KeySchema[0].AttributeName) != "pk" || tbl.KeySchema[0].KeyType != types.KeyTypeHash ||
		aws.ToString(tbl.KeySchema[1].AttributeName) != "sk" || tbl.KeySchema[1].KeyType != types.KeyTypeRange {
		t.Errorf("key schema %+v, want pk HASH sk RANGE", tbl.KeySchema)
	}
	if tbl.BillingModeSummary == nil || tbl.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
		t.Errorf("billing %+v, want PAY_PER_REQUEST", tbl.BillingModeSummary)
	}
	if len(tbl.GlobalSecondaryIndexes) != 1 || aws.ToString(tbl.GlobalSecondaryIndexes[0].IndexName) != "by-name" ||
		tbl.GlobalSecondaryIndexes[0].Projection.ProjectionType != types.ProjectionTypeKeysOnly {
		t.Errorf("indexes %+v, want by-name KEYS_ONLY", tbl.GlobalSecondaryIndexes)
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if d := ttl.TimeToLiveDescription; d == nil || aws.ToString(d.AttributeName) != "expires_at" ||
		(d.TimeToLiveStatus != types.TimeToLiveStatusEnabled && d.TimeToLiveStatus != types.TimeToLiveStatusEnabling) {
		t.Errorf("TTL %+v, want expires_at enabled", d)
	}
}
