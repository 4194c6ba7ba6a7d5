package sam_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmgw/token-service/tools/sam"
)

const projectTemplate = "../../template.yaml"

func TestTranslateProjectTemplate(t *testing.T) {
	ctx := context.Background()
	if err := sam.Available(ctx); err != nil {
		t.Fatalf("the SAM translator is missing (make lint installs it): %v", err)
	}
	tmpl, raw, err := sam.Translate(ctx, projectTemplate, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 || len(tmpl.OfType("AWS::Lambda::Function")) == 0 {
		t.Fatalf("translation has no Lambda function: %d bytes", len(raw))
	}
	for _, id := range tmpl.OfType("AWS::Lambda::Function") {
		if strings.Contains(id, "Serverless") {
			t.Errorf("%s: SAM type left untranslated", id)
		}
	}
}

func TestTranslateRefusesBrokenTemplate(t *testing.T) {
	data, err := os.ReadFile(projectTemplate)
	if err != nil {
		t.Fatal(err)
	}
	// An HttpApi event pointing at an API that does not exist.
	broken := strings.Replace(string(data), "ApiId: !Ref TokenApi", "ApiId: !Ref NoSuchApi", 1)
	path := filepath.Join(t.TempDir(), "template.yaml")
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	const want = "ApiId must be a valid reference"
	if _, _, err := sam.Translate(context.Background(), path, nil); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Translate of a broken template = %v, want the translator's error %q", err, want)
	}
}

func TestSchema(t *testing.T) {
	ctx := context.Background()
	if err := sam.Schema(ctx, projectTemplate); err != nil {
		t.Fatalf("project template: %v", err)
	}
	data, err := os.ReadFile(projectTemplate)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(data), "ReauthorizeEvery: 0", "ReauthorizeEvery: !Ref MaxTokensPerUser", 1)
	path := filepath.Join(t.TempDir(), "template.yaml")
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := sam.Schema(ctx, path); err == nil || !strings.Contains(err.Error(), "ReauthorizeEvery") {
		t.Fatalf("Schema of a template with ReauthorizeEvery: !Ref = %v, want an error naming it", err)
	}
}
