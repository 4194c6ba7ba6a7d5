package api

// Internals the external tests check.
var (
	StatusByCode = statusByCode
	Catalog      = func(code string) (zh, en string, ok bool) {
		m, ok := catalog[code]
		return m.zh, m.en, ok
	}
)
