package dynamo

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"

	"github.com/llmgw/token-service/internal/token"
)

// minuteWindow is a fixed per-clock-minute request counter kept in two
// attributes of an item: the window's minute start and the count in it.
// The verify rpm_limit (on the token) and the reveal limit (on the user's
// meta item) both use it, each with one conditional UpdateItem.
type minuteWindow struct{ windowAttr, countAttr string }

var (
	rpmWindow    = minuteWindow{windowAttr: attrRPMWindow, countAttr: attrRPMCount}
	revealWindow = minuteWindow{windowAttr: attrRevealWindow, countAttr: attrRevealCount}
)

// count adds to cond and update the counting of one request at now, given
// the window the caller believes is stored (known): in that window while
// its count is under limit when known is now's window or a later one
// (another container's clock slightly ahead opened it: the window never
// moves back), or, when known is an older window, opening now's window.
// Whoever opens a window first wins; the others fail the condition, learn
// the stored window and count themselves in it on a retry.
func (w minuteWindow) count(cond expression.ConditionBuilder, update expression.UpdateBuilder, known, limit int64, now time.Time) (expression.ConditionBuilder, expression.UpdateBuilder) {
	window := token.MinuteStart(now)
	if known >= window {
		cond = cond.And(expression.Name(w.windowAttr).Equal(expression.Value(known))).
			And(expression.Name(w.countAttr).LessThan(expression.Value(limit)))
		return cond, update.Add(expression.Name(w.countAttr), expression.Value(1))
	}
	cond = cond.And(expression.AttributeNotExists(expression.Name(w.windowAttr)).
		Or(expression.Name(w.windowAttr).LessThan(expression.Value(window))))
	return cond, update.Set(expression.Name(w.windowAttr), expression.Value(window)).
		Set(expression.Name(w.countAttr), expression.Value(1))
}
