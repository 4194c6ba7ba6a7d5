package api

import (
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/llmgw/token-service/internal/message"
)

// RequestLang picks the language of r's messages from its Accept-Language
// header: the language range with the highest q (the first one on a tie)
// decides, English when it starts with "en", Chinese otherwise.
func RequestLang(r *http.Request) message.Lang {
	return ParseAcceptLanguage(r.Header.Get("Accept-Language"))
}

// ParseAcceptLanguage is RequestLang on a header value.
func ParseAcceptLanguage(header string) message.Lang {
	type rng struct {
		tag string
		q   float64
		i   int
	}
	var ranges []rng
	for i, part := range strings.Split(header, ",") {
		fields := strings.Split(part, ";")
		tag := strings.ToLower(strings.TrimSpace(fields[0]))
		if tag == "" {
			continue
		}
		q := 1.0
		for _, p := range fields[1:] {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok || strings.TrimSpace(strings.ToLower(k)) != "q" {
				continue
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || f < 0 || f > 1 {
				f = 0
			}
			q = f
		}
		if q > 0 {
			ranges = append(ranges, rng{tag, q, i})
		}
	}
	if len(ranges) == 0 {
		return message.ZH
	}
	sort.SliceStable(ranges, func(a, b int) bool { return ranges[a].q > ranges[b].q })
	if strings.HasPrefix(ranges[0].tag, "en") {
		return message.EN
	}
	return message.ZH
}
