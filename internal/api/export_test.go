package api

import "github.com/llmgw/token-service/internal/message"

// Internals the external tests check.
var (
	StatusByCode = statusByCode
	Catalog      = func(code string) (zh, en string, ok bool) {
		return message.Text(code, message.ZH), message.Text(code, message.EN), message.Has(code)
	}
	// Message is the catalog's text (internal/message), as handlers answer it.
	Message = message.Text
)

// Lang is the catalog's language, as RequestLang picks it.
type Lang = message.Lang

// The catalog's languages.
const (
	LangZH = message.ZH
	LangEN = message.EN
)
