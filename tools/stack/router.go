package stack

import (
	"strings"

	"github.com/llmgw/token-service/tools/template"
)

// Router matches requests to the template's HttpApi routes the way API
// Gateway does: a fixed segment beats a {param}, which beats a greedy
// {proxy+}; an exact method beats ANY; a trailing slash is ignored.
type Router struct {
	routes []compiledRoute
}

type segKind int

// Segment kinds, in the order of precedence.
const (
	segFixed segKind = iota
	segParam
	segGreedy
)

type segment struct {
	kind segKind
	text string // fixed text or parameter name
}

type compiledRoute struct {
	route template.Route
	segs  []segment
}

// NewRouter compiles the routes.
func NewRouter(routes []template.Route) *Router {
	r := &Router{}
	for _, rt := range routes {
		var segs []segment
		for _, s := range splitPath(rt.Path) {
			switch {
			case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "+}"):
				segs = append(segs, segment{segGreedy, s[1 : len(s)-2]})
			case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}"):
				segs = append(segs, segment{segParam, s[1 : len(s)-1]})
			default:
				segs = append(segs, segment{segFixed, s})
			}
		}
		r.routes = append(r.routes, compiledRoute{route: rt, segs: segs})
	}
	return r
}

// splitPath splits "/a/b/" into [a b]; the root is no segment at all.
func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// Match returns the route for method and path (the decoded URL path) and
// its path parameters; ok is false when no route matches (API Gateway's 404,
// also for a known path with another method).
func (r *Router) Match(method, path string) (route template.Route, params map[string]string, ok bool) {
	parts := splitPath(path)
	var best *compiledRoute
	var bestParams map[string]string
	for i := range r.routes {
		cr := &r.routes[i]
		if cr.route.Method != method && cr.route.Method != "ANY" {
			continue
		}
		p, matched := cr.match(parts)
		if !matched {
			continue
		}
		if best == nil || cr.beats(best, method) {
			best, bestParams = cr, p
		}
	}
	if best == nil {
		return template.Route{}, nil, false
	}
	return best.route, bestParams, true
}

func (cr *compiledRoute) match(parts []string) (map[string]string, bool) {
	var params map[string]string
	set := func(k, v string) {
		if params == nil {
			params = map[string]string{}
		}
		params[k] = v
	}
	for i, s := range cr.segs {
		if s.kind == segGreedy {
			// A greedy parameter takes one or more segments and must be last.
			if i != len(cr.segs)-1 || i >= len(parts) {
				return nil, false
			}
			set(s.text, strings.Join(parts[i:], "/"))
			return params, true
		}
		if i >= len(parts) {
			return nil, false
		}
		switch s.kind {
		case segFixed:
			if parts[i] != s.text {
				return nil, false
			}
		case segParam:
			set(s.text, parts[i])
		}
	}
	if len(parts) != len(cr.segs) {
		return nil, false
	}
	return params, true
}

// beats compares two routes matching the same request: the first segment
// where they differ decides (fixed > param > greedy), then the longer path,
// then the exact method over ANY.
func (cr *compiledRoute) beats(other *compiledRoute, method string) bool {
	for i := 0; i < len(cr.segs) && i < len(other.segs); i++ {
		if a, b := cr.segs[i].kind, other.segs[i].kind; a != b {
			return a < b
		}
	}
	if len(cr.segs) != len(other.segs) {
		return len(cr.segs) > len(other.segs)
	}
	return cr.route.Method == method && other.route.Method != method
}
