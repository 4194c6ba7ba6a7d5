package templatecheck_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// projectRoot is where the Makefile is, from this package's directory.
const projectRoot = "../.."

// TestLintTemplate runs `make lint-template` (what `make lint` runs on
// template.yaml) on the project's template and on copies broken in ways
// each of AWS's tools catches: it passes on the template and fails on
// every broken copy, with the finding of the tool that should catch it.
func TestLintTemplate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs cfn-lint and the SAM translator (about a minute)")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is missing")
	}
	tmpl := readProjectTemplate(t)
	tests := []struct {
		name string
		// old is replaced by new once in a copy of template.yaml; both
		// empty lint the template as it is.
		old, new string
		// want is in make's output: the finding of the tool that caught
		// the fault, none when make must succeed.
		want []string
	}{
		{name: "project template"},
		{
			// cfn-lint and the translator accept it; SAM's schema
			// requires an integer (deploys refused it).
			name: "schema: ReauthorizeEvery from a parameter",
			old:  "ReauthorizeEvery: 0",
			new:  "ReauthorizeEvery: !Ref LogRetentionDays",
			want: []string{"schema.py", "ReauthorizeEvery", "is not of type 'integer'"},
		},
		{
			name: "translator: route with an authorizer the API does not define",
			old:  "Authorizer: NONE",
			new:  "Authorizer: Nobody",
			want: []string{"translate.py", "Unable to set Authorizer [Nobody]"},
		},
		{
			name: "cfn-lint: unknown table property",
			old:  "DeletionProtectionEnabled: true",
			new:  "DeletionProtection: true",
			want: []string{"cfn-lint", "E3002", "DeletionProtection"},
		},
		{
			name: "cfn-lint: Lambda runtime that does not exist",
			old:  "Runtime: provided.al2023",
			new:  "Runtime: provided.al2099",
			want: []string{"cfn-lint", "E3030", "provided.al2099"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			text := tmpl
			if tt.old != "" {
				if !strings.Contains(text, tt.old) {
					t.Fatalf("template.yaml no longer holds %q: update the test", tt.old)
				}
				text = strings.Replace(text, tt.old, tt.new, 1)
			}
			path := filepath.Join(dir, "template.yaml")
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := makeLintTemplate(t, path, filepath.Join(dir, "out"))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("make lint-template of %s: %v\n%s", tt.name, err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("make lint-template of a template with %q succeeded, want a failure\n%s", tt.new, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("make lint-template output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// makeLintTemplate runs `make lint-template` on the template at path, its
// translations written under out, and returns make's output.
func makeLintTemplate(t *testing.T, path, out string) (string, error) {
	t.Helper()
	root, err := filepath.Abs(projectRoot)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "make", "--no-print-directory", "-C", root, "lint-template",
		"TEMPLATE="+path, "TEMPLATE_OUT="+out)
	// Run from `make test`, the child would inherit the parent's flags and
	// command-line variables through MAKEFLAGS.
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err = cmd.Run()
	return buf.String(), err
}
