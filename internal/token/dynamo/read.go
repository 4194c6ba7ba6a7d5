package dynamo

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/llmgw/token-service/internal/token"
)

// Get reads one token with one strongly consistent GetItem.
func (s *Tokens) Get(ctx context.Context, userID string, id int64) (token.Token, error) {
	if err := checkUser(userID); err != nil {
		return token.Token{}, fmt.Errorf("get token: %w", err)
	}
	if err := token.CheckID(id); err != nil {
		return token.Token{}, err
	}
	t, found, err := s.core.readToken(ctx, userID, id)
	if err != nil {
		return token.Token{}, fmt.Errorf("get token: %w", err)
	}
	if !found {
		return token.Token{}, fmt.Errorf("get token: %w", token.ErrNotFound)
	}
	return t, nil
}

// userItemsQuery is the descending, strongly consistent Query over a user's
// items from the meta item (sk USER) down through the tokens, newest first.
func (s *Tokens) userItemsQuery(userID string) (*dynamodb.QueryInput, error) {
	kc := expression.Key(PartitionKey).Equal(expression.Value(userPK(userID))).
		And(expression.Key(SortKey).Between(expression.Value(tokenPrefix), expression.Value(metaSK)))
	expr, err := expression.NewBuilder().WithKeyCondition(kc).Build()
	if err != nil {
		return nil, err
	}
	return &dynamodb.QueryInput{
		TableName:                 aws.String(s.core.table),
		KeyConditionExpression:    expr.KeyCondition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		ScanIndexForward:          aws.Bool(false),
		ConsistentRead:            aws.Bool(true),
	}, nil
}

// List returns page (1-based) of size tokens, newest first, and the user's
// token count. Page 1 is one Query: the meta item sorts after every token,
// so a descending Query returns it first, then the newest tokens. A later
// page reads and skips (page-1)*size tokens first, so its cost grows with
// the offset (DynamoDB has no OFFSET); UIs mostly read the first pages.
// A token that cannot be decoded is logged and left out: its page holds
// one item fewer, and the other pages stay as they are.
func (s *Tokens) List(ctx context.Context, userID string, page, size int) (token.Page, error) {
	if err := checkUser(userID); err != nil {
		return token.Page{}, fmt.Errorf("list tokens: %w", err)
	}
	if page < 1 || size < 1 {
		return token.Page{}, token.Errorf(token.EInvalidRequest, "page and page size must be positive")
	}
	in, err := s.userItemsQuery(userID)
	if err != nil {
		return token.Page{}, fmt.Errorf("list tokens: %w", err)
	}
	skip := (page - 1) * size
	res := token.Page{Items: []token.Token{}}
	seen := 0 // tokens read so far
	metaRead := false
	for {
		// Read no more than the meta item, the skipped tokens and the page.
		want := skip + size - seen
		if !metaRead {
			want++
			if skip > 0 {
				// A later page reads the count alone first, so a page far
				// past the end costs one small read, not the skipped items.
				want = 1
			}
		}
		in.Limit = aws.Int32(int32(min(want, 1000)))
		out, err := s.core.db.Query(ctx, in)
		if err != nil {
			return token.Page{}, fmt.Errorf("list tokens: %w", err)
		}
		for _, av := range out.Items {
			if isMeta(av) {
				var m metaItem
				if err := attributevalue.UnmarshalMap(av, &m); err != nil {
					return token.Page{}, fmt.Errorf("list tokens: decode user meta: %w", err)
				}
				res.Total, metaRead = m.TokenCount, true
				continue
			}
			metaRead = true // no meta item sorts after a token
			seen++
			if seen <= skip || seen > skip+size {
				continue
			}
			t, err := decodeToken(av)
			if isUnreadable(err) {
				skipUnreadable(ctx, "list tokens", userID, err)
				continue
			}
			if err != nil {
				return token.Page{}, fmt.Errorf("list tokens: %w", err)
			}
			res.Items = append(res.Items, t)
		}
		if seen >= skip+size || len(out.LastEvaluatedKey) == 0 {
			return res, nil
		}
		// Nothing to skip into: the page is past the end.
		if metaRead && res.Total <= skip {
			return res, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// Search returns up to limit of the user's tokens, newest first, matching q.
// A whole key is one strongly consistent read of its lookup item and one of
// the token; anything else reads the user's tokens and filters them here
// (a name keyword is case-insensitive, which no DynamoDB filter is). A
// token that cannot be decoded is logged and left out.
func (s *Tokens) Search(ctx context.Context, userID string, q token.SearchQuery, limit int) ([]token.Token, error) {
	if err := checkUser(userID); err != nil {
		return nil, fmt.Errorf("search tokens: %w", err)
	}
	if limit < 1 {
		return nil, token.Errorf(token.EInvalidRequest, "limit must be positive")
	}
	keyword := strings.ToLower(q.Keyword)
	nameMatches := func(t token.Token) bool {
		return strings.Contains(strings.ToLower(t.Name), keyword)
	}
	if key, err := token.KeyParser(q.AcceptLegacyKey)(q.Key); err == nil {
		t, found, err := s.byKey(ctx, userID, key)
		if err != nil {
			return nil, fmt.Errorf("search tokens: %w", err)
		}
		if !found || !nameMatches(t) {
			return []token.Token{}, nil
		}
		return []token.Token{t}, nil
	}

	in, err := s.userItemsQuery(userID)
	if err != nil {
		return nil, fmt.Errorf("search tokens: %w", err)
	}
	found := []token.Token{}
	for {
		out, err := s.core.db.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("search tokens: %w", err)
		}
		for _, av := range out.Items {
			if isMeta(av) {
				continue
			}
			t, err := decodeToken(av)
			if isUnreadable(err) {
				skipUnreadable(ctx, "search tokens", userID, err)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("search tokens: %w", err)
			}
			if nameMatches(t) && token.MatchesKeyFragment(t.KeyMask, q.Key) {
				if found = append(found, t); len(found) == limit {
					return found, nil
				}
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return found, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// byKey finds the user's token with the canonical key: its lookup item, then
// the token, both read strongly consistently. A key of another user is not
// found, nor a rotated-out one: the token's own key_hash confirms the
// mapping, so the lookup item's grace expiry (which would need a clock)
// never decides.
func (s *Tokens) byKey(ctx context.Context, userID, key string) (token.Token, bool, error) {
	hash := token.HashKey(key)
	l, found, err := s.core.readLookup(ctx, hash)
	if err != nil || !found || l.UserID != userID {
		return token.Token{}, false, err
	}
	t, found, err := s.core.readToken(ctx, userID, l.TokenID)
	if isUnreadable(err) {
		skipUnreadable(ctx, "search tokens", userID, err)
		return token.Token{}, false, nil
	}
	if err != nil || !found {
		return token.Token{}, false, err
	}
	// The token's own hash confirms the mapping.
	if t.KeyHash != hash {
		return token.Token{}, false, nil
	}
	return t, true, nil
}

// GetWithUser reads one token and its user's disabled flag together, with
// one strongly consistent BatchGetItem of the token and the user's meta
// item (as verify's ReadForVerify does): the usage endpoint refuses a
// disabled user's keys without a second read. ErrNotFound when the token
// does not exist; a user without a meta item is not disabled.
func (s *Tokens) GetWithUser(ctx context.Context, userID string, id int64) (t token.Token, userDisabled bool, err error) {
	if err := checkUser(userID); err != nil {
		return token.Token{}, false, fmt.Errorf("get token with user: %w", err)
	}
	if err := token.CheckID(id); err != nil {
		return token.Token{}, false, err
	}
	r, err := s.core.readWithUser(ctx, userID, id, nil)
	if err != nil {
		return token.Token{}, false, fmt.Errorf("get token with user: %w", err)
	}
	if r.token == nil {
		return token.Token{}, false, fmt.Errorf("get token with user: %w", token.ErrNotFound)
	}
	if t, err = decodeToken(r.token); err != nil {
		return token.Token{}, false, fmt.Errorf("get token with user: %w", err)
	}
	userDisabled = r.userDisabled
	return t, userDisabled, nil
}
