// Package fence holds the product's dependency rules as tests: what each
// Lambda function links, read from `go list -deps` of the product module.
package fence

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/llmgw/token-service"

// root is the product module, two folders up from this package.
var root = filepath.Join("..", "..")

// forbiddenEverywhere are package path prefixes no function may link: the
// tooling module, the product's test support, and the tooling's own
// dependencies.
var forbiddenEverywhere = []string{
	module + "/tools/",
	module + "/internal/dynamotest",
	module + "/internal/ddbcount",
	module + "/internal/token/memstore",
	module + "/internal/token/storetest",
	"github.com/awslabs/goformation",
	"gopkg.in/yaml",
	"github.com/aws/aws-lambda-runtime-interface-emulator",
	"github.com/aws/aws-sdk-go-v2/service/lambda",
	"testing",
	// cmd/admin import's source readers and database drivers.
	module + "/internal/importer",
	"database/sql",
	"modernc.org/",
	"github.com/go-sql-driver/mysql",
	"github.com/jackc/",
}

// forbiddenFor are further prefixes one function may not link.
var forbiddenFor = map[string][]string{
	// The relay's call is not HTTP: no HTTP adapter, no HTTP package.
	"verify-token": {"github.com/awslabs/aws-lambda-go-api-proxy", module + "/internal/api"},
	// The console serves embedded files and reads no table.
	"console": {"github.com/aws/aws-sdk-go-v2/service/dynamodb", module + "/internal/token/dynamo"},
}

type listed struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func goList(t *testing.T, args ...string) []listed {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json"}, args...)...)
	cmd.Dir = root
	cmd.Env = append(cmd.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0", "GOFLAGS=-tags=lambda.norpc")
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("go list %v: %v", args, err)
	}
	var pkgs []listed
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestFunctionsLinkOnlyProductCode(t *testing.T) {
	fns := goList(t, "./functions/...")
	if len(fns) < 10 {
		t.Fatalf("found %d functions under functions/, want every one", len(fns))
	}
	for _, fn := range fns {
		name := filepath.Base(fn.ImportPath)
		t.Run(name, func(t *testing.T) {
			rules := append(append([]string(nil), forbiddenEverywhere...), forbiddenFor[name]...)
			var bad []string
			for _, dep := range fn.Deps {
				for _, rule := range rules {
					if under(dep, rule) {
						bad = append(bad, dep)
					}
				}
			}
			sort.Strings(bad)
			if len(bad) > 0 {
				t.Errorf("%s links %s", fn.ImportPath, strings.Join(bad, ", "))
			}
		})
	}
}

// under reports whether package path is rule or inside it; a rule ending
// in "/" is a tree.
func under(path, rule string) bool {
	if strings.HasSuffix(rule, "/") {
		return strings.HasPrefix(path, rule)
	}
	return path == rule || strings.HasPrefix(path, rule+"/")
}

// TestVerifyImports: verify depends on the domain and the standard library
// and on its own interface, never on the HTTP package or the DynamoDB store.
func TestVerifyImports(t *testing.T) {
	pkgs := goList(t, "./internal/verify")
	if len(pkgs) != 1 {
		t.Fatalf("go list ./internal/verify: %d packages", len(pkgs))
	}
	for _, imp := range pkgs[0].Imports {
		switch {
		case imp == module+"/internal/api", strings.HasPrefix(imp, module+"/internal/token/dynamo"),
			strings.HasPrefix(imp, "github.com/aws/aws-sdk-go-v2/service/dynamodb"),
			strings.HasPrefix(imp, "github.com/awslabs/aws-lambda-go-api-proxy"):
			t.Errorf("internal/verify imports %s", imp)
		}
	}
}
