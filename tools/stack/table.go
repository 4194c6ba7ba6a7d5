package stack

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	cfdynamodb "github.com/awslabs/goformation/v7/cloudformation/dynamodb"

	"github.com/llmgw/token-service/tools/template"
)

// TableAPI is the part of the DynamoDB client EnsureTable uses.
type TableAPI interface {
	DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(context.Context, *dynamodb.CreateTableInput, ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	UpdateTimeToLive(context.Context, *dynamodb.UpdateTimeToLiveInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

// EnsureTable creates the table t.Name as the template declares it (keys,
// attributes, billing, indexes, streams, then TTL) unless it exists; an
// existing table with another key schema is an error. created reports a
// new table.
func EnsureTable(ctx context.Context, client TableAPI, t *template.Table) (created bool, err error) {
	in, err := CreateTableInput(t)
	if err != nil {
		return false, err
	}
	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: in.TableName})
	if err == nil {
		if !sameKeys(out.Table.KeySchema, in.KeySchema) {
			return false, fmt.Errorf("table %s exists with another key schema than the template's %s", t.Name, t.LogicalID)
		}
		return false, nil
	}
	var notFound *types.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		return false, fmt.Errorf("describe table %s: %w", t.Name, err)
	}
	if _, err := client.CreateTable(ctx, in); err != nil {
		var inUse *types.ResourceInUseException
		if errors.As(err, &inUse) {
			return false, nil // created meanwhile
		}
		return false, fmt.Errorf("create table %s: %w", t.Name, err)
	}
	waiter := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, time.Second
	})
	if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: in.TableName}, time.Minute); err != nil {
		return true, fmt.Errorf("wait for table %s: %w", t.Name, err)
	}
	if ttl := t.Resource.TimeToLiveSpecification; ttl != nil && ttl.Enabled && ttl.AttributeName != nil {
		_, err := client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName: in.TableName,
			TimeToLiveSpecification: &types.TimeToLiveSpecification{
				AttributeName: ttl.AttributeName,
				Enabled:       aws.Bool(true),
			},
		})
		if err != nil {
			return true, fmt.Errorf("enable TTL on %s: %w", t.Name, err)
		}
	}
	return true, nil
}

func sameKeys(a, b []types.KeySchemaElement) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if aws.ToString(a[i].AttributeName) != aws.ToString(b[i].AttributeName) || a[i].KeyType != b[i].KeyType {
			return false
		}
	}
	return true
}

// CreateTableInput converts the template's table resource.
func CreateTableInput(t *template.Table) (*dynamodb.CreateTableInput, error) {
	r := t.Resource
	if len(r.KeySchema) == 0 {
		return nil, fmt.Errorf("table %s: no KeySchema", t.LogicalID)
	}
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(t.Name),
		KeySchema:   keySchema(r.KeySchema),
		BillingMode: types.BillingModePayPerRequest,
	}
	for _, a := range r.AttributeDefinitions {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{
			AttributeName: aws.String(a.AttributeName),
			AttributeType: types.ScalarAttributeType(a.AttributeType),
		})
	}
	provisioned := r.BillingMode == nil || *r.BillingMode == string(types.BillingModeProvisioned)
	if provisioned {
		in.BillingMode = types.BillingModeProvisioned
		in.ProvisionedThroughput = throughput(r.ProvisionedThroughput)
	}
	for _, g := range r.GlobalSecondaryIndexes {
		idx := types.GlobalSecondaryIndex{
			IndexName:  aws.String(g.IndexName),
			KeySchema:  keySchema(g.KeySchema),
			Projection: projection(g.Projection),
		}
		if provisioned {
			idx.ProvisionedThroughput = throughput(g.ProvisionedThroughput)
		}
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, idx)
	}
	for _, l := range r.LocalSecondaryIndexes {
		in.LocalSecondaryIndexes = append(in.LocalSecondaryIndexes, types.LocalSecondaryIndex{
			IndexName:  aws.String(l.IndexName),
			KeySchema:  keySchema(l.KeySchema),
			Projection: projection(l.Projection),
		})
	}
	if s := r.StreamSpecification; s != nil && s.StreamViewType != "" {
		in.StreamSpecification = &types.StreamSpecification{
			StreamEnabled:  aws.Bool(true),
			StreamViewType: types.StreamViewType(s.StreamViewType),
		}
	}
	return in, nil
}

func keySchema(ks []cfdynamodb.Table_KeySchema) []types.KeySchemaElement {
	out := make([]types.KeySchemaElement, 0, len(ks))
	for _, k := range ks {
		out = append(out, types.KeySchemaElement{AttributeName: aws.String(k.AttributeName), KeyType: types.KeyType(k.KeyType)})
	}
	return out
}

func projection(p *cfdynamodb.Table_Projection) *types.Projection {
	if p == nil {
		return &types.Projection{ProjectionType: types.ProjectionTypeAll}
	}
	out := &types.Projection{ProjectionType: types.ProjectionTypeAll, NonKeyAttributes: p.NonKeyAttributes}
	if p.ProjectionType != nil {
		out.ProjectionType = types.ProjectionType(*p.ProjectionType)
	}
	return out
}

func throughput(p *cfdynamodb.Table_ProvisionedThroughput) *types.ProvisionedThroughput {
	if p == nil {
		return &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(5), WriteCapacityUnits: aws.Int64(5)}
	}
	return &types.ProvisionedThroughput{
		ReadCapacityUnits:  aws.Int64(int64(p.ReadCapacityUnits)),
		WriteCapacityUnits: aws.Int64(int64(p.WriteCapacityUnits)),
	}
}
