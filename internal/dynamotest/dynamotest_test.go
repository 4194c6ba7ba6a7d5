package dynamotest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/dynamotest"
)

func TestNewTable(t *testing.T) {
	tests := []struct{ name string }{
		{"plain"},
		{"with spaces/and slashes#and " + strings.Repeat("x", 300)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, table := dynamotest.NewTable(t)
			if len(table) > 255 || !strings.HasPrefix(table, "TestNewTable_") {
				t.Errorf("table name %q: want TestNewTable_... of at most 255 characters", table)
			}
			out, err := client.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
			if err != nil {
				t.Fatalf("DescribeTable: %v", err)
			}
			got := map[string]types.KeyType{}
			for _, k := range out.Table.KeySchema {
				got[*k.AttributeName] = k.KeyType
			}
			if got["pk"] != types.KeyTypeHash || got["sk"] != types.KeyTypeRange || len(got) != 2 {
				t.Errorf("key schema = %v, want pk HASH and sk RANGE", got)
			}
		})
	}
	t.Run("unique names", func(t *testing.T) {
		_, a := dynamotest.NewTable(t)
		_, b := dynamotest.NewTable(t)
		if a == b {
			t.Errorf("two tables named %q", a)
		}
	})
}
