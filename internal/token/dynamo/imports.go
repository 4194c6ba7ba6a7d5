package dynamo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/internal/token"
)

// importSK is the sort key of a user's import record: the source token ids
// every import of that user has written, so that a rerun never writes a
// row twice, nor brings back a token the user deleted here since. It sorts
// before every TOKEN# key, outside the range list and search read.
const importSK = "IMPORT"

// Attributes of imports: the meta item's source, the import record's ids.
const (
	attrImportSource = "import_source"
	attrSourceIDs    = "source_ids"
)

// maxImportTxTokens is the most tokens one import transaction writes: each
// token has its lookup item, and the meta item and the import record are
// two more actions of the 100 a transaction holds.
const maxImportTxTokens = 48

// importItem is a user's import record.
type importItem struct {
	PK        string  `dynamodbav:"pk"`
	SK        string  `dynamodbav:"sk"`
	SourceIDs []int64 `dynamodbav:"source_ids,numberset,omitempty"`
}

// ImportUser is one user of an import (cmd/admin import), as the
// importer's rules made it from the source's rows.
type ImportUser struct {
	UserID string
	// Source names the deployment the user comes from; it is recorded on
	// the meta item, and a user recorded from another source, or created
	// here, is refused.
	Source string
	// Disabled sets the user's disabled flag (never clears it).
	Disabled bool
	// Tokens are the user's rows to import, by ascending SourceID.
	Tokens []ImportToken
	// AccessTokenHash is auth.Hash of the user's access token to import,
	// or "" for none.
	AccessTokenHash string
}

// ImportToken is one source row to import.
type ImportToken struct {
	// SourceID is the row's id in the source: the id it keeps when free.
	SourceID int64
	// Token holds every field but ID and UserID; Key is the full key.
	Token token.Token
	// NameFromID gives the token the name token-<id> (the source's name
	// showed nothing).
	NameFromID bool
}

// ImportOutcome is what an import did with one row.
type ImportOutcome int

// The outcomes of a row.
const (
	// ImportWritten: imported under its source id.
	ImportWritten ImportOutcome = iota + 1
	// ImportRenumbered: imported under another id, its own being used here.
	ImportRenumbered
	// ImportAlready: an earlier import wrote it (it may have been changed
	// or deleted here since): nothing written.
	ImportAlready
	// ImportKeyTaken: refused, the key's lookup item exists for another
	// token.
	ImportKeyTaken
)

// ImportedToken is the outcome of one ImportToken.
type ImportedToken struct {
	SourceID int64
	// ID is the token's id here (0 when refused).
	ID      int64
	Name    string
	Outcome ImportOutcome
}

// AccessOutcome is what an import did with a user's access token.
type AccessOutcome int

// The outcomes of an access token.
const (
	AccessNone    AccessOutcome = iota // the user has none to import
	AccessWritten                      // stored for the user
	AccessAlready                      // stored for the user by an earlier import
	AccessTaken                        // refused: the hash belongs to another user
)

// ImportResult is what ImportUser did, or would do in a dry run.
type ImportResult struct {
	// Refused says why the whole user was refused ("" when not): a user
	// recorded from another source, or created here.
	Refused string
	// Tokens is one outcome per ImportUser.Tokens, in the same order.
	Tokens []ImportedToken
	Access AccessOutcome
	// TokenCount is the user's token count after the import.
	TokenCount int
	// Wrote reports whether any item was written (or would be).
	Wrote bool
}

// Importer writes imported users and tokens: cmd/admin import's writer.
// Each user's tokens go in transactions of at most 48 tokens, each with
// their lookup items, the meta item (conditioned on the id counter read,
// as a create is) and the user's import record, so that counts and ids
// stay exact whatever stops the import, and a rerun writes nothing twice.
type Importer struct {
	core   *Core
	sealer token.Sealer
	now    func() time.Time
}

// NewImporter returns the importer over core; sealer seals the imported
// keys, as a create seals new ones.
func NewImporter(core *Core, sealer token.Sealer) (*Importer, error) {
	if sealer == nil {
		return nil, errors.New("dynamo: no sealer")
	}
	return &Importer{core: core, sealer: sealer, now: time.Now}, nil
}

// importState is what ImportUser reads of a user before it plans.
type importState struct {
	meta       metaItem
	metaExists bool
	imported   map[int64]bool
	// lookups are the key lookup items found, by key hash.
	lookups map[string]lookupItem
	// accessUser is the user of the access token's item, "" if none.
	accessUser string
}

// importPlan is what ImportUser will write for a user.
type importPlan struct {
	result ImportResult
	// write are the indexes (into ImportUser.Tokens) of the rows to write,
	// with their ids in result.Tokens; ids ascend.
	write []int
	// metaOnly: no token to write, but the meta item needs one update
	// (a new user, the disabled flag).
	metaOnly bool
	// access: the access token item needs writing.
	access bool
}

// errImportRace is a transaction that found the user changed since it was
// read: read again and plan again.
var errImportRace = errors.New("the user changed during the import")

// ImportUser imports u: one strongly consistent BatchGetItem of the user's
// meta item, import record, access token item and the tokens' key lookup
// items (100 keys a request), then transactions of at most 48 tokens and
// an access token PutItem. A user that holds nothing new costs the reads
// alone. With dryRun nothing is written and the result says what would be.
// A concurrent change of the user (a create here) makes it read and plan
// again.
func (s *Importer) ImportUser(ctx context.Context, u ImportUser, dryRun bool) (ImportResult, error) {
	if err := checkUser(u.UserID); err != nil {
		return ImportResult{}, fmt.Errorf("import user: %w", err)
	}
	if u.Source == "" {
		return ImportResult{}, errors.New("import user: no source")
	}
	for i := 1; i < len(u.Tokens); i++ {
		if u.Tokens[i].SourceID <= u.Tokens[i-1].SourceID {
			return ImportResult{}, errors.New("import user: tokens not in ascending source id order")
		}
	}
	for attempt := 1; ; attempt++ {
		st, err := s.readImportState(ctx, u)
		if err != nil {
			return ImportResult{}, fmt.Errorf("import user %s: %w", u.UserID, err)
		}
		plan := planImport(u, st)
		if dryRun || plan.result.Refused != "" {
			return plan.result, nil
		}
		err = s.writeImport(ctx, u, st, plan)
		if err == nil {
			return plan.result, nil
		}
		if !errors.Is(err, errImportRace) {
			return ImportResult{}, fmt.Errorf("import user %s: %w", u.UserID, err)
		}
		if attempt >= s.core.retry.attempts {
			return ImportResult{}, fmt.Errorf("import user %s: %w", u.UserID, errRetriesExhausted)
		}
		if err := s.core.retry.wait(ctx, attempt); err != nil {
			return ImportResult{}, fmt.Errorf("import user %s: %w", u.UserID, err)
		}
	}
}

// readImportState reads what planImport needs, strongly consistently.
func (s *Importer) readImportState(ctx context.Context, u ImportUser) (importState, error) {
	keys := []map[string]types.AttributeValue{metaKey(u.UserID), itemKey(userPK(u.UserID), importSK)}
	if u.AccessTokenHash != "" {
		keys = append(keys, itemKey(accessPK(u.AccessTokenHash), accessSK))
	}
	for _, t := range u.Tokens {
		keys = append(keys, lookupKey(token.HashKey(t.Token.Key)))
	}
	st := importState{imported: map[int64]bool{}, lookups: map[string]lookupItem{}}
	for start := 0; start < len(keys); start += 100 {
		items, err := s.core.batchGet(ctx, keys[start:min(start+100, len(keys))], nil)
		if err != nil {
			return importState{}, fmt.Errorf("read: %w", err)
		}
		for _, av := range items {
			var k struct {
				PK string `dynamodbav:"pk"`
				SK string `dynamodbav:"sk"`
			}
			if err := attributevalue.UnmarshalMap(av, &k); err != nil {
				return importState{}, fmt.Errorf("decode: %w", err)
			}
			switch k.SK {
			case metaSK:
				if err := attributevalue.UnmarshalMap(av, &st.meta); err != nil {
					return importState{}, fmt.Errorf("decode user meta: %w", err)
				}
				st.metaExists = true
			case importSK:
				var rec importItem
				if err := attributevalue.UnmarshalMap(av, &rec); err != nil {
					return importState{}, fmt.Errorf("decode import record: %w", err)
				}
				for _, id := range rec.SourceIDs {
					st.imported[id] = true
				}
			case accessSK:
				var a accessItem
				if err := attributevalue.UnmarshalMap(av, &a); err != nil {
					return importState{}, fmt.Errorf("decode access token: %w", err)
				}
				st.accessUser = a.UserID
			case keySK:
				var l lookupItem
				if err := attributevalue.UnmarshalMap(av, &l); err != nil {
					return importState{}, fmt.Errorf("decode key lookup: %w", err)
				}
				st.lookups[k.PK[len(keyPrefix):]] = l
			}
		}
	}
	return st, nil
}

// planImport decides, from what was read, each row's outcome and id.
// Rows go in ascending source id; a row keeps its id when it is above the
// user's id counter (every id used here is at or below it), else it takes
// the next id; either way the counter moves to it. Planned again after a
// stop from the state the written part left, the rest gets the same ids
// as in one uninterrupted run.
func planImport(u ImportUser, st importState) importPlan {
	var p importPlan
	switch {
	case st.metaExists && st.meta.ImportSource == "":
		p.result.Refused = "user id exists here already (created here, not imported)"
		return p
	case st.metaExists && st.meta.ImportSource != u.Source:
		p.result.Refused = "user id exists here already, imported from another source (" + st.meta.ImportSource + ")"
		return p
	}
	next := st.meta.NextID
	count := st.meta.TokenCount
	p.result.Tokens = make([]ImportedToken, len(u.Tokens))
	for i, t := range u.Tokens {
		r := ImportedToken{SourceID: t.SourceID, Name: t.Token.Name}
		_, taken := st.lookups[token.HashKey(t.Token.Key)]
		switch {
		case st.imported[t.SourceID]:
			r.Outcome = ImportAlready
		case taken:
			r.Outcome = ImportKeyTaken
		default:
			r.ID, r.Outcome = t.SourceID, ImportWritten
			if t.SourceID <= next {
				r.ID, r.Outcome = next+1, ImportRenumbered
			}
			next = r.ID
			count++
			if t.NameFromID {
				r.Name = "token-" + strconv.FormatInt(r.ID, 10)
			}
			p.write = append(p.write, i)
		}
		p.result.Tokens[i] = r
	}
	p.result.TokenCount = count
	p.metaOnly = len(p.write) == 0 && (!st.metaExists || (u.Disabled && !st.meta.Disabled))
	switch {
	case u.AccessTokenHash == "":
		p.result.Access = AccessNone
	case st.accessUser == "":
		p.result.Access, p.access = AccessWritten, true
	case st.accessUser == u.UserID:
		p.result.Access = AccessAlready
	default:
		p.result.Access = AccessTaken
	}
	p.result.Wrote = len(p.write) > 0 || p.metaOnly || p.access
	return p
}

// writeImport writes plan: the tokens in transactions of at most
// maxImportTxTokens, each moving the meta item from the counter the last
// one left; then the access token.
func (s *Importer) writeImport(ctx context.Context, u ImportUser, st importState, plan importPlan) error {
	expected, exists := st.meta.NextID, st.metaExists
	for start := 0; start < len(plan.write); start += maxImportTxTokens {
		chunk := plan.write[start:min(start+maxImportTxTokens, len(plan.write))]
		in, last, err := s.importTx(ctx, u, plan, chunk, expected, exists)
		if err != nil {
			return err
		}
		if _, err := s.core.db.TransactWriteItems(ctx, in); err != nil {
			reasons, ok := cancellation(err)
			if !ok {
				return fmt.Errorf("write tokens: %w", err)
			}
			// Actions: tokens [0,n), lookups [n,2n), meta 2n, record 2n+1.
			// The meta item's condition, a lookup item written meanwhile
			// or a conflict: another writer changed the user; read again.
			n := len(chunk)
			lookupTaken := false
			for i := n; i < 2*n; i++ {
				lookupTaken = lookupTaken || reasonCode(reasons, i) == reasonConditionFailed
			}
			if reasonCode(reasons, 2*n) == reasonConditionFailed || lookupTaken || hasReason(reasons, reasonConflict) {
				return errImportRace
			}
			return fmt.Errorf("write tokens: transaction cancelled: %s", describeReasons(reasons))
		}
		expected, exists = last, true
	}
	if plan.metaOnly {
		if err := s.updateMetaOnly(ctx, u, expected, exists); err != nil {
			return err
		}
	}
	if plan.access {
		if err := s.putImportedAccess(ctx, u); err != nil {
			return err
		}
	}
	return nil
}

// metaUpdate is the meta item's update of an import write that adds n
// tokens and moves the counter from expected (the meta item existing or
// not) to next.
func metaUpdate(u ImportUser, n int, expected, next int64, exists bool) (expression.Expression, error) {
	var cond expression.ConditionBuilder
	if !exists {
		cond = expression.AttributeNotExists(expression.Name(PartitionKey))
	} else {
		counter := expression.Name(attrNextID).Equal(expression.Value(expected))
		if expected == 0 {
			counter = expression.AttributeNotExists(expression.Name(attrNextID)).Or(counter)
		}
		cond = expression.Name(attrImportSource).Equal(expression.Value(u.Source)).And(counter)
	}
	update := expression.Set(expression.Name(attrImportSource), expression.Value(u.Source)).
		Set(expression.Name(attrNextID), expression.Value(next)).
		Add(expression.Name(attrTokenCount), expression.Value(n))
	if u.Disabled {
		update = update.Set(expression.Name(attrDisabled), expression.Value(true))
	}
	return expression.NewBuilder().WithCondition(cond).WithUpdate(update).Build()
}

// importTx builds the transaction of the rows chunk (indexes into
// u.Tokens) and returns it with the last id it writes.
func (s *Importer) importTx(ctx context.Context, u ImportUser, plan importPlan, chunk []int, expected int64, exists bool) (*dynamodb.TransactWriteItemsInput, int64, error) {
	notExists, err := expression.NewBuilder().
		WithCondition(expression.AttributeNotExists(expression.Name(PartitionKey))).Build()
	if err != nil {
		return nil, 0, err
	}
	now := s.now().Unix()
	items := make([]types.TransactWriteItem, 0, 2*len(chunk)+2)
	lookups := make([]types.TransactWriteItem, 0, len(chunk))
	ids := make([]int64, 0, len(chunk))
	var last int64
	for _, i := range chunk {
		r := plan.result.Tokens[i]
		t := u.Tokens[i].Token
		t.ID, t.UserID, t.Name = r.ID, u.UserID, r.Name
		t.KeyHash, t.KeyMask = token.HashKey(t.Key), token.MaskKey(t.Key)
		if t.CreatedTime == 0 {
			t.CreatedTime = now
		}
		it := toDBToken(t)
		it.KeySealed, err = s.sealer.Seal(ctx, []byte(t.Key), sealAAD(it.PK, it.SK))
		if err != nil {
			return nil, 0, fmt.Errorf("seal key: %w", err)
		}
		av, err := attributevalue.MarshalMap(it)
		if err != nil {
			return nil, 0, fmt.Errorf("marshal token: %w", err)
		}
		items = append(items, types.TransactWriteItem{Put: &types.Put{
			TableName: aws.String(s.core.table), Item: av,
			ConditionExpression: notExists.Condition(), ExpressionAttributeNames: notExists.Names(),
		}})
		lav, err := attributevalue.MarshalMap(lookupItem{PK: keyPK(t.KeyHash), SK: keySK, UserID: u.UserID, TokenID: t.ID})
		if err != nil {
			return nil, 0, fmt.Errorf("marshal key lookup: %w", err)
		}
		lookups = append(lookups, types.TransactWriteItem{Put: &types.Put{
			TableName: aws.String(s.core.table), Item: lav,
			ConditionExpression: notExists.Condition(), ExpressionAttributeNames: notExists.Names(),
		}})
		ids = append(ids, u.Tokens[i].SourceID)
		last = t.ID
	}
	items = append(items, lookups...)
	meta, err := metaUpdate(u, len(chunk), expected, last, exists)
	if err != nil {
		return nil, 0, err
	}
	items = append(items, types.TransactWriteItem{Update: &types.Update{
		TableName: aws.String(s.core.table), Key: metaKey(u.UserID),
		UpdateExpression: meta.Update(), ConditionExpression: meta.Condition(),
		ExpressionAttributeNames: meta.Names(), ExpressionAttributeValues: meta.Values(),
	}})
	idSet := make([]string, len(ids))
	for i, id := range slices.Sorted(slices.Values(ids)) {
		idSet[i] = strconv.FormatInt(id, 10)
	}
	rec, err := expression.NewBuilder().WithUpdate(
		expression.Add(expression.Name(attrSourceIDs), expression.Value(&types.AttributeValueMemberNS{Value: idSet}))).Build()
	if err != nil {
		return nil, 0, err
	}
	items = append(items, types.TransactWriteItem{Update: &types.Update{
		TableName: aws.String(s.core.table), Key: itemKey(userPK(u.UserID), importSK),
		UpdateExpression: rec.Update(), ExpressionAttributeNames: rec.Names(), ExpressionAttributeValues: rec.Values(),
	}})
	return &dynamodb.TransactWriteItemsInput{TransactItems: items}, last, nil
}

// updateMetaOnly records a user who brings no new token: the source, and
// the disabled flag.
func (s *Importer) updateMetaOnly(ctx context.Context, u ImportUser, expected int64, exists bool) error {
	expr, err := metaUpdate(u, 0, expected, expected, exists)
	if err != nil {
		return err
	}
	_, err = s.core.db.UpdateItem(ctx, s.core.updateInput(metaKey(u.UserID), expr))
	if _, ok := isConditionFailed(err); ok {
		return errImportRace
	}
	if err != nil {
		return fmt.Errorf("write user meta: %w", err)
	}
	return nil
}

// putImportedAccess stores the user's access token, never over another.
func (s *Importer) putImportedAccess(ctx context.Context, u ImportUser) error {
	av, err := attributevalue.MarshalMap(accessItem{
		PK: accessPK(u.AccessTokenHash), SK: accessSK, UserID: u.UserID,
		Role: auth.RoleUser, Status: statusActive, CreatedTime: s.now().Unix(),
	})
	if err != nil {
		return fmt.Errorf("put access token: %w", err)
	}
	expr, err := expression.NewBuilder().
		WithCondition(expression.AttributeNotExists(expression.Name(PartitionKey))).Build()
	if err != nil {
		return fmt.Errorf("put access token: %w", err)
	}
	_, err = s.core.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.core.table), Item: av,
		ConditionExpression: expr.Condition(), ExpressionAttributeNames: expr.Names(),
	})
	if _, ok := isConditionFailed(err); ok {
		return errImportRace
	}
	if err != nil {
		return fmt.Errorf("put access token: %w", err)
	}
	return nil
}
