package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/token"
)

// Update applies p with one conditional UpdateItem. The condition is that
// the token exists and, when p enables it, the enable rules on the stored
// values p does not replace; when the condition fails, the old item (returned
// with the failure) says which rule refused. An empty patch reads the token.
// A patch that names a budget_timezone other than the stored one takes a
// second UpdateItem (see below).
func (s *Tokens) Update(ctx context.Context, userID string, id int64, p token.Patch, now time.Time) (token.Token, error) {
	if err := checkUser(userID); err != nil {
		return token.Token{}, fmt.Errorf("update token: %w", err)
	}
	if err := token.CheckID(id); err != nil {
		return token.Token{}, err
	}
	if p.Empty() {
		t, err := s.Get(ctx, userID, id)
		if err != nil {
			return token.Token{}, fmt.Errorf("update token: %w", err)
		}
		return t, nil
	}

	cond := expression.AttributeExists(expression.Name(PartitionKey))
	if p.Status != nil && *p.Status == token.StatusEnabled {
		rules, refusal, decided := enableConditions(p, now)
		if decided {
			if refusal != nil {
				// Refused whatever is stored, but an unknown id must
				// still answer not found: read it (refusals only).
				return s.refuseEnable(ctx, userID, id, p, now)
			}
		} else if rules == nil {
			// Refused whatever is stored, but whether as expired or as
			// exhausted (or not found) depends on the stored expiry: read it.
			return s.refuseEnable(ctx, userID, id, p, now)
		} else {
			for _, r := range rules {
				cond = cond.And(r)
			}
		}
	}

	// A patch that names a zone is written on the belief that the stored
	// zone is that one (a client sending the token back unchanged), held
	// by the condition; when another is stored, the failed write returns
	// it and the next write, conditioned on it, changes the zone and
	// clears every window's state in the same UpdateItem.
	storedZone := ""
	if p.BudgetTimezone != nil {
		storedZone = *p.BudgetTimezone
	}
	for attempt := 1; ; attempt++ {
		c := cond
		if p.BudgetTimezone != nil {
			c = c.And(zoneIs(storedZone))
		}
		expr, err := expression.NewBuilder().WithCondition(c).WithUpdate(budgetUpdate(patchUpdate(p), p, storedZone)).Build()
		if err != nil {
			return token.Token{}, fmt.Errorf("update token: %w", err)
		}
		in := s.core.updateInput(tokenKey(userID, id), expr)
		in.ReturnValues = types.ReturnValueAllNew
		out, err := s.core.db.UpdateItem(ctx, in)
		if ccf, ok := isConditionFailed(err); ok {
			if len(ccf.Item) == 0 {
				return token.Token{}, fmt.Errorf("update token: %w", token.ErrNotFound)
			}
			old, err := decodeToken(ccf.Item)
			if err != nil {
				return token.Token{}, fmt.Errorf("update token: %w", err)
			}
			if p.BudgetTimezone != nil && old.BudgetTimezone != storedZone && attempt < maxZoneAttempts {
				storedZone = old.BudgetTimezone
				continue
			}
			if err := p.Apply(old).CheckEnable(now); err != nil {
				return token.Token{}, fmt.Errorf("update token: %w", err)
			}
			return token.Token{}, errors.New("update token: condition failed on a token that may be enabled")
		}
		if err != nil {
			return token.Token{}, fmt.Errorf("update token: %w", err)
		}
		t, err := decodeToken(out.Attributes)
		if err != nil {
			return token.Token{}, fmt.Errorf("update token: %w", err)
		}
		return t, nil
	}
}

// maxZoneAttempts bounds the writes of an update that names a zone: the
// first finds the stored zone when it guessed wrong; more are needed only
// while concurrent updates keep changing the zone.
const maxZoneAttempts = 4

// enableConditions returns what enabling with p requires of the stored
// values at now. decided means p alone settles it: refusal is then the
// answer (nil = allowed, no condition needed). Otherwise rules are the
// conditions on stored values, or nil when p makes the token exhausted but
// the stored expiry decides which refusal applies.
func enableConditions(p token.Patch, now time.Time) (rules []expression.ConditionBuilder, refusal error, decided bool) {
	expiryKnown := p.ExpiredTime != nil
	if expiryKnown && *p.ExpiredTime != token.NeverExpires && *p.ExpiredTime <= now.Unix() {
		return nil, &token.Error{Code: token.ETokenExpired}, true // expired wins over exhausted
	}
	if !expiryKnown {
		rules = append(rules, expression.Name(attrExpired).Equal(expression.Value(token.NeverExpires)).
			Or(expression.Name(attrExpired).GreaterThan(expression.Value(now.Unix()))))
	}

	unlimited := expression.Name(attrUnlimited).Equal(expression.Value(true))
	hasQuota := expression.Name(attrRemain).GreaterThan(expression.Value(0))
	switch {
	case p.UnlimitedQuota != nil && *p.UnlimitedQuota, p.RemainQuota != nil && *p.RemainQuota > 0:
		// Not exhausted whatever is stored.
	case p.UnlimitedQuota != nil && p.RemainQuota != nil:
		// Limited with no quota left: exhausted whatever is stored.
		if expiryKnown {
			return nil, &token.Error{Code: token.ETokenExhausted}, true
		}
		return nil, nil, false
	case p.UnlimitedQuota != nil: // limited; the stored quota decides
		rules = append(rules, hasQuota)
	case p.RemainQuota != nil: // no quota left; the stored unlimited flag decides
		rules = append(rules, unlimited)
	default:
		rules = append(rules, unlimited.Or(hasQuota))
	}
	if len(rules) == 0 {
		return nil, nil, true
	}
	return rules, nil, false
}

// refuseEnable reads the token to tell which refusal an enabling patch meets.
func (s *Tokens) refuseEnable(ctx context.Context, userID string, id int64, p token.Patch, now time.Time) (token.Token, error) {
	old, found, err := s.core.readToken(ctx, userID, id)
	switch {
	case err != nil:
		return token.Token{}, fmt.Errorf("update token: %w", err)
	case !found:
		return token.Token{}, fmt.Errorf("update token: %w", token.ErrNotFound)
	}
	if err := p.Apply(old).CheckEnable(now); err != nil {
		return token.Token{}, fmt.Errorf("update token: %w", err)
	}
	return token.Token{}, errors.New("update token: an exhausted token passed the enable check")
}

// patchUpdate sets the attributes p sets. Empty lists are stored as empty
// lists, as Create stores them.
func patchUpdate(p token.Patch) expression.UpdateBuilder {
	var u expression.UpdateBuilder
	set := func(name string, v any) { u = u.Set(expression.Name(name), expression.Value(v)) }
	if p.Name != nil {
		set("name", *p.Name)
	}
	if p.ExpiredTime != nil {
		set(attrExpired, *p.ExpiredTime)
	}
	if p.RemainQuota != nil {
		set(attrRemain, *p.RemainQuota)
	}
	if p.UnlimitedQuota != nil {
		set(attrUnlimited, *p.UnlimitedQuota)
	}
	if p.ModelLimitsEnabled != nil {
		set("model_limits_enabled", *p.ModelLimitsEnabled)
	}
	if p.ModelLimits != nil {
		set("model_limits", dbList(*p.ModelLimits))
	}
	if p.AllowIPs != nil {
		set("allow_ips", dbList(*p.AllowIPs))
	}
	if p.Group != nil {
		set("group", *p.Group)
	}
	if p.Status != nil {
		set(attrStatus, int(*p.Status))
	}
	if p.RPMLimit != nil {
		set("rpm_limit", *p.RPMLimit)
	}
	return u
}
