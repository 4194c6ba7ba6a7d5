// Package message is the catalog of every user-facing message, by code and
// language (Chinese by default, as upstream new-api; English on request):
// the HTTP answers' messages (package api) and the verify answers' (package
// verify) read the same texts, so neither imports the other.
package message

import "github.com/llmgw/token-service/internal/token"

// Lang is a language of the catalog.
type Lang int

// The catalog's languages; Chinese is the default, as upstream.
const (
	ZH Lang = iota
	EN
)

type texts struct{ zh, en string }

// catalog holds every user-facing message. The zh texts of the upstream codes
// are new-api's, verbatim.
var catalog = map[string]texts{
	token.EInvalidRequest:  {"参数错误", "Invalid request parameters"},
	token.EInvalidJSON:     {"请求体不是有效的 JSON，或字段类型错误", "The request body is not valid JSON or a field has the wrong type"},
	token.EBodyTooLarge:    {"请求体过大（最大 64 KiB）", "The request body is too large (at most 64 KiB)"},
	token.EInvalidID:       {"令牌 ID 无效，必须是正整数", "Invalid token id: it must be a positive integer"},
	token.ENameRequired:    {"令牌名称不能为空", "The token name is required"},
	token.ENameTooLong:     {"令牌名称过长", "The token name is too long (at most 30 characters)"},
	token.EInvalidName:     {"令牌名称无效：不能包含控制字符、文字方向控制字符或标签字符，不能以 BOM 开头，且须有可见字符", "Invalid token name: no control, bidirectional-control or tag characters, no leading BOM, and at least one visible character"},
	token.EInvalidExpiry:   {"过期时间无效，必须是 -1（永不过期）或未来的时间", "Invalid expired_time: use -1 (never expires) or a time in the future"},
	token.EInvalidQuota:    {"额度无效，必须在 0 到 500000000000000 之间", "Invalid remain_quota: it must be between 0 and 500000000000000"},
	token.EInvalidModels:   {"模型限制无效（每项 1-128 个字符，仅限字母、数字和 ._:/@+-，可以 * 结尾表示前缀匹配；最多 200 项、共 4096 字节）", "Invalid model_limits (each entry 1-128 letters, digits or ._:/@+-, optionally ending in * as a prefix pattern; at most 200 entries and 4096 bytes)"},
	token.EInvalidAllowIPs: {"IP 白名单无效，请填写 IP 地址或 CIDR 网段（最多 100 项、共 2048 字节）", "Invalid allow_ips: use IP addresses or CIDR ranges (at most 100 entries and 2048 bytes)"},
	token.EInvalidGroup:    {"分组无效", "Invalid group"},
	// A generated name over the length limit (name-49) is name_too_long,
	// not invalid_count: this text speaks of the count only.
	token.EInvalidCount:    {"创建数量无效，必须在 1 到 49 之间", "Invalid count: it must be between 1 and 49"},
	token.EInvalidStatus:   {"状态无效，只能设置为 1（启用）或 2（禁用）", "Invalid status: only 1 (enabled) or 2 (disabled) may be set"},
	token.EInvalidRPMLimit: {"每分钟请求数限制无效", "Invalid rpm_limit"},
	token.EInvalidGrace:    {"宽限期无效，必须是 0 到 604800 之间的整数（秒）", "Invalid grace_seconds: it must be an integer from 0 to 604800"},
	token.EInvalidBudgets:  {"消费窗口无效：budgets 只能包含 minute、hour、day、week、month，每个额度为 0 到 500000000000000 之间的整数；budget_timezone 必须是有效的 IANA 时区名", "Invalid budgets: budgets may hold only minute, hour, day, week and month, each an integer from 0 to 500000000000000; budget_timezone must be a valid IANA zone name"},
	token.ETokenExpired:    {"令牌已过期，无法启用，请先修改令牌过期时间，或者设置为永不过期", "The token has expired and cannot be enabled: change its expiry first, or make it never expire"},
	token.ETokenExhausted:  {"令牌可用额度已用尽，无法启用，请先修改令牌剩余额度，或者设置为无限额度", "The token's quota is used up and it cannot be enabled: raise its remaining quota first, or make it unlimited"},
	token.ENotFound:        {"Token不存在", "Token not found"},
	token.ETokenUnreadable: {"该令牌的存储数据无法读取，请联系管理员", "This token's stored data cannot be read: contact the administrator"},
	token.ETokenLimit:      {"令牌数量已达上限", "You have reached the maximum number of tokens"},
	token.EUnauthorized:    {"未登录或登录已失效", "Unauthorized"},
	token.ERateLimited:     {"请求过于频繁，请稍后再试", "Too many requests, please try again later"},
	token.EInternal:        {"服务器内部错误，请稍后再试", "Internal server error, please try again later"},
	token.EListFailed:      {"获取Token列表失败", "Failed to list tokens"},
	token.ESearchFailed:    {"搜索Token失败", "Failed to search tokens"},

	// The usage endpoint's missing key (new-api's token.not_provided); its
	// invalid key is the verify answer's not_found below (token.invalid).
	token.KeyNotProvided: {"未提供令牌", "Token not provided"},

	// The verify answers' codes (invalid_request and rate_limited are above).
	token.VerifyNotFound:          {"无效的令牌", "Invalid token"},
	token.VerifyDisabled:          {"该令牌状态不可用", "The token is disabled"},
	token.VerifyExpired:           {"该令牌已过期", "The token has expired"},
	token.VerifyExhausted:         {"该令牌额度已用尽", "The token's quota is used up"},
	token.VerifyIPNotAllowed:      {"您的 IP 不在令牌允许访问的列表中", "Your IP is not in the token's allowed list"},
	token.VerifyModelNotAllowed:   {"该令牌无权访问该模型", "The token may not use this model"},
	token.VerifyBudgetExceeded:    {"已超出令牌的消费窗口额度，请等待窗口重置", "The token's spend window is used up: wait for it to reset"},
	token.VerifyInsufficientQuota: {"令牌额度不足", "The token's remaining quota is not enough"},
	token.VerifyRequestConflict:   {"请求 ID 冲突：该请求 ID 已用于另一个操作", "Request id conflict: this request id was already used for another event"},
}

// Text returns the catalog text of code in lang; an unknown code reads as
// internal_error.
func Text(code string, lang Lang) string {
	t, ok := catalog[code]
	if !ok {
		t = catalog[token.EInternal]
	}
	if lang == EN {
		return t.en
	}
	return t.zh
}

// Has reports whether code is in the catalog.
func Has(code string) bool {
	_, ok := catalog[code]
	return ok
}
