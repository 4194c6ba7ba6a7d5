package ddbcount

import (
	"context"
	"maps"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
)

// Capacity is the capacity DynamoDB reported as consumed by one operation's
// requests (ConsumedCapacity, summed), and, for TransactWriteItems, the
// actions the transactions held.
type Capacity struct {
	// Units is the sum of CapacityUnits.
	Units float64
	// Read and Write are the sums of ReadCapacityUnits and
	// WriteCapacityUnits, when DynamoDB reports them apart.
	Read, Write float64
	// TxActions counts the actions (items) of TransactWriteItems requests.
	TxActions int
	// TxPutBytes is the DynamoDB item size (attribute names and values) of
	// every Put of TransactWriteItems requests; other actions' items are not
	// in the request, so their size is not known here.
	TxPutBytes []int
}

// CapacityOption installs the counter (as Option does) and also asks every
// request that can report consumed capacity for it (ReturnConsumedCapacity
// TOTAL, on a copy of the input: the caller's input is left as it is) and
// sums what the answers report, by operation: see Capacity.
func (c *Counter) CapacityOption(o *dynamodb.Options) {
	c.Option(o)
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("ddbcount-capacity",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				op, actions, puts := "", 0, []int(nil)
				in.Parameters, op, actions, puts = withCapacity(in.Parameters)
				out, md, err := next.HandleInitialize(ctx, in)
				if op != "" {
					x := Capacity{TxActions: actions, TxPutBytes: puts}
					if err == nil {
						addConsumed(&x, consumed(out.Result))
					}
					c.addCapacity(op, x)
				}
				return out, md, err
			}), middleware.Before)
	})
}

// withCapacity returns a copy of params that asks for consumed capacity, the
// operation's name ("" for an operation that cannot report it), and a
// TransactWriteItems' action count and Put item sizes.
func withCapacity(params any) (_ any, op string, actions int, puts []int) {
	const total = types.ReturnConsumedCapacityTotal
	switch v := params.(type) {
	case *dynamodb.GetItemInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp, "GetItem", 0, nil
	case *dynamodb.PutItemInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp, "PutItem", 0, nil
	case *dynamodb.UpdateItemInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp, "UpdateItem", 0, nil
	case *dynamodb.DeleteItemInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp, "DeleteItem", 0, nil
	case *dynamodb.QueryInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp, "Query", 0, nil
	case *dynamodb.ScanInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp, "Scan", 0, nil
	case *dynamodb.BatchGetItemInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp, "BatchGetItem", 0, nil
	case *dynamodb.BatchWriteItemInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp, "BatchWriteItem", 0, nil
	case *dynamodb.TransactGetItemsInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp, "TransactGetItems", len(v.TransactItems), nil
	case *dynamodb.TransactWriteItemsInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		for _, it := range v.TransactItems {
			if it.Put != nil {
				puts = append(puts, ItemSize(it.Put.Item))
			}
		}
		return &cp, "TransactWriteItems", len(v.TransactItems), puts
	}
	return params, "", 0, nil
}

// consumed returns the ConsumedCapacity of an operation's output.
func consumed(result any) []types.ConsumedCapacity {
	one := func(c *types.ConsumedCapacity) []types.ConsumedCapacity {
		if c == nil {
			return nil
		}
		return []types.ConsumedCapacity{*c}
	}
	switch v := result.(type) {
	case *dynamodb.GetItemOutput:
		return one(v.ConsumedCapacity)
	case *dynamodb.PutItemOutput:
		return one(v.ConsumedCapacity)
	case *dynamodb.UpdateItemOutput:
		return one(v.ConsumedCapacity)
	case *dynamodb.DeleteItemOutput:
		return one(v.ConsumedCapacity)
	case *dynamodb.QueryOutput:
		return one(v.ConsumedCapacity)
	case *dynamodb.ScanOutput:
		return one(v.ConsumedCapacity)
	case *dynamodb.BatchGetItemOutput:
		return v.ConsumedCapacity
	case *dynamodb.BatchWriteItemOutput:
		return v.ConsumedCapacity
	case *dynamodb.TransactGetItemsOutput:
		return v.ConsumedCapacity
	case *dynamodb.TransactWriteItemsOutput:
		return v.ConsumedCapacity
	}
	return nil
}

func addConsumed(c *Capacity, cs []types.ConsumedCapacity) {
	f := func(p *float64) float64 {
		if p == nil {
			return 0
		}
		return *p
	}
	for _, x := range cs {
		c.Units += f(x.CapacityUnits)
		c.Read += f(x.ReadCapacityUnits)
		c.Write += f(x.WriteCapacityUnits)
	}
}

func (c *Counter) addCapacity(op string, x Capacity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.capacity == nil {
		c.capacity = make(map[string]Capacity)
	}
	cur := c.capacity[op]
	cur.Units += x.Units
	cur.Read += x.Read
	cur.Write += x.Write
	cur.TxActions += x.TxActions
	cur.TxPutBytes = append(cur.TxPutBytes, x.TxPutBytes...)
	c.capacity[op] = cur
}

// Capacities returns a copy of the capacity consumed so far, by operation
// (only with CapacityOption).
func (c *Counter) Capacities() map[string]Capacity {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := maps.Clone(c.capacity)
	for k, v := range out {
		v.TxPutBytes = append([]int(nil), v.TxPutBytes...)
		out[k] = v
	}
	return out
}

// ItemSize is an item's size as DynamoDB bills it: for each attribute the
// UTF-8 length of its name plus the size of its value (strings: UTF-8
// length; numbers: about 1 byte per 2 significant digits plus 1; binary:
// length; booleans and nulls: 1; lists and maps: 3 plus their elements, a
// map's element names included, plus 1 per element).
func ItemSize(item map[string]types.AttributeValue) int {
	n := 0
	for k, v := range item {
		n += len(k) + valueSize(v)
	}
	return n
}

func valueSize(v types.AttributeValue) int {
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return len(x.Value)
	case *types.AttributeValueMemberN:
		return numberSize(x.Value)
	case *types.AttributeValueMemberB:
		return len(x.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range x.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range x.Value {
			n += numberSize(s)
		}
		return n
	case *types.AttributeValueMemberBS:
		n := 0
		for _, b := range x.Value {
			n += len(b)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range x.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range x.Value {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	}
	return 0
}

// numberSize approximates a number's stored size: 1 byte per 2 significant
// digits, plus 1.
func numberSize(s string) int {
	digits := 0
	for _, r := range s {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	return (digits+1)/2 + 1
}
