// Package sam runs AWS's own SAM tools offline on the project's template:
// the SAM translator (aws-sam-translator, the code CloudFormation runs for
// Transform: AWS::Serverless-2016-10-31) and SAM's JSON schema, both Python,
// through python3. Tests read the translated CloudFormation, which is what
// AWS deploys, and hold the local runner's reading of the template against
// it.
package sam

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
)

//go:embed translate.py
var translateScript string

//go:embed schema.py
var schemaScript string

// Python is the interpreter that has aws-sam-translator (pip install
// cfn-lint brings it); `make lint` installs it when missing.
var Python = "python3"

// Template is a translated CloudFormation template.
type Template struct {
	Parameters map[string]map[string]any `json:"Parameters"`
	Conditions map[string]any            `json:"Conditions"`
	Resources  map[string]Resource       `json:"Resources"`
	Outputs    map[string]map[string]any `json:"Outputs"`
}

// Resource is one CloudFormation resource.
type Resource struct {
	Type           string         `json:"Type"`
	Condition      string         `json:"Condition,omitempty"`
	DeletionPolicy string         `json:"DeletionPolicy,omitempty"`
	Properties     map[string]any `json:"Properties"`
	Metadata       map[string]any `json:"Metadata,omitempty"`
}

// OfType returns the logical ids of the resources of type typ, sorted.
func (t *Template) OfType(typ string) []string {
	var ids []string
	for id, r := range t.Resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// Translate runs the SAM translator on the template at path with the given
// parameter values (the rest keep their defaults) and returns the
// CloudFormation it produces. A template the translator refuses is an
// error carrying the translator's messages.
func Translate(ctx context.Context, path string, params map[string]string) (*Template, []byte, error) {
	args := []string{path}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		args = append(args, k+"="+params[k])
	}
	out, err := runPython(ctx, translateScript, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("sam translate %s: %w", path, err)
	}
	var t Template
	if err := json.Unmarshal(out, &t); err != nil {
		return nil, nil, fmt.Errorf("sam translate %s: read output: %w", path, err)
	}
	return &t, out, nil
}

// Schema validates the template at path against SAM's JSON schema; the
// error lists every finding.
func Schema(ctx context.Context, path string) error {
	if _, err := runPython(ctx, schemaScript, path); err != nil {
		return fmt.Errorf("sam schema %s: %w", path, err)
	}
	return nil
}

// Available reports whether python3 can import the SAM translator, and why
// not.
func Available(ctx context.Context) error {
	_, err := runPython(ctx, "import samtranslator, jsonschema\n")
	return err
}

func runPython(ctx context.Context, script string, args ...string) ([]byte, error) {
	// With -c, Python's sys.argv is ["-c", args...]: the scripts read their
	// arguments from sys.argv[1].
	cmd := exec.CommandContext(ctx, Python, append([]string{"-c", script}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stderr.String() + "\n" + stdout.String())
		var ee *exec.ExitError
		if errors.As(err, &ee) && msg != "" {
			return nil, errors.New(msg)
		}
		return nil, fmt.Errorf("%v: %s", err, msg)
	}
	return stdout.Bytes(), nil
}
