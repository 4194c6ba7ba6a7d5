package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/token"
)

// TestPathIDOnlyFromPathParameters: the {id} of a route comes from the
// event's path parameters; a missing one is a missing id (invalid_id),
// never the path's last segment ("key", "rotate", or a number).
func TestPathIDOnlyFromPathParameters(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		params   map[string]string
		wantID   int64
		wantCode string
	}{
		{"id parameter", "/api/token/7", map[string]string{"id": "7"}, 7, ""},
		{"id parameter, reveal route", "/api/token/7/key", map[string]string{"id": "7"}, 7, ""},
		{"no parameters, reveal route", "/api/token/7/key", nil, 0, token.EInvalidID},
		{"no parameters, rotate route", "/api/token/7/rotate", nil, 0, token.EInvalidID},
		{"no parameters, id last", "/api/token/7", nil, 0, token.EInvalidID},
		{"another parameter only", "/api/token/7", map[string]string{"proxy": "7"}, 0, token.EInvalidID},
		{"empty id", "/api/token/", map[string]string{"id": ""}, 0, token.EInvalidID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotID int64
			var gotErr error
			h := api.LambdaHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotID, gotErr = api.PathID(r)
				w.WriteHeader(http.StatusNoContent)
			}))
			ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RawPath: tt.path, PathParameters: tt.params}
			ev.RequestContext.HTTP.Method = http.MethodGet
			ev.RequestContext.HTTP.Path = tt.path
			if _, err := h(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			if gotID != tt.wantID || token.ErrorCode(gotErr) != tt.wantCode {
				t.Errorf("PathID = %d, %v; want %d, code %q", gotID, gotErr, tt.wantID, tt.wantCode)
			}
		})
	}
}
