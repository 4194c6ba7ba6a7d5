package stack_test

import (
	"maps"
	"testing"

	"github.com/llmgw/token-service/tools/stack"
	"github.com/llmgw/token-service/tools/template"
)

func TestRouterMatch(t *testing.T) {
	routes := []template.Route{
		{Function: "List", Method: "GET", Path: "/api/token"},
		{Function: "Create", Method: "POST", Path: "/api/token"},
		{Function: "Search", Method: "GET", Path: "/api/token/search"},
		{Function: "Get", Method: "GET", Path: "/api/token/{id}"},
		{Function: "Delete", Method: "DELETE", Path: "/api/token/{id}"},
		{Function: "Batch", Method: "POST", Path: "/api/token/batch"},
		{Function: "Reveal", Method: "POST", Path: "/api/token/{id}/key"},
		{Function: "Files", Method: "ANY", Path: "/files/{proxy+}"},
		{Function: "FileGet", Method: "GET", Path: "/files/{proxy+}"},
		{Function: "Readme", Method: "GET", Path: "/files/readme"},
		{Function: "Root", Method: "GET", Path: "/"},
	}
	r := stack.NewRouter(routes)
	tests := []struct {
		name, method, path string
		wantFn             string // "" = no match (404)
		wantParams         map[string]string
	}{
		{"fixed path", "GET", "/api/token", "List", nil},
		{"trailing slash", "GET", "/api/token/", "List", nil},
		{"method picks route", "POST", "/api/token", "Create", nil},
		{"post trailing slash", "POST", "/api/token/", "Create", nil},
		{"fixed beats param", "GET", "/api/token/search", "Search", nil},
		{"fixed beats param, trailing slash", "GET", "/api/token/search/", "Search", nil},
		{"param", "GET", "/api/token/42", "Get", map[string]string{"id": "42"}},
		{"param trailing slash", "GET", "/api/token/42/", "Get", map[string]string{"id": "42"}},
		{"param other method", "DELETE", "/api/token/7", "Delete", map[string]string{"id": "7"}},
		{"fixed segment with other method is a param", "DELETE", "/api/token/search", "Delete", map[string]string{"id": "search"}},
		{"batch", "POST", "/api/token/batch", "Batch", nil},
		{"nested", "POST", "/api/token/3/key", "Reveal", map[string]string{"id": "3"}},
		{"method mismatch", "PUT", "/api/token/42", "", nil},
		{"method mismatch on fixed", "PATCH", "/api/token", "", nil},
		{"unknown path", "GET", "/api/tokens", "", nil},
		{"too deep", "GET", "/api/token/1/2", "", nil},
		{"greedy", "PUT", "/files/a/b/c", "Files", map[string]string{"proxy": "a/b/c"}},
		{"exact method beats ANY", "GET", "/files/a/b", "FileGet", map[string]string{"proxy": "a/b"}},
		{"fixed beats greedy", "GET", "/files/readme", "Readme", nil},
		{"greedy needs a segment", "GET", "/files/", "", nil},
		{"root", "GET", "/", "Root", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, params, ok := r.Match(tt.method, tt.path)
			if tt.wantFn == "" {
				if ok {
					t.Fatalf("Match(%s %s) = %s, want no match", tt.method, tt.path, got.Function)
				}
				return
			}
			if !ok || got.Function != tt.wantFn {
				t.Fatalf("Match(%s %s) = %q (ok %v), want %s", tt.method, tt.path, got.Function, ok, tt.wantFn)
			}
			if !maps.Equal(params, tt.wantParams) {
				t.Errorf("params = %v, want %v", params, tt.wantParams)
			}
		})
	}
}
