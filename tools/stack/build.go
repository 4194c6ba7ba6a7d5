package stack

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/llmgw/token-service/tools/template"
)

// RIEPackage is the emulator's command, pinned by a tool line in the
// tooling module's go.mod (tools/go.mod).
const RIEPackage = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"

// BuildRIE builds the Runtime Interface Emulator pinned in tools/go.mod into
// binDir and returns the binary's path. root is the project root (or any
// folder inside the tooling module): the build runs in root/tools when that
// is the tooling module, else in root.
func BuildRIE(ctx context.Context, root, binDir string) (string, error) {
	out, err := filepath.Abs(filepath.Join(binDir, "aws-lambda-rie"))
	if err != nil {
		return "", fmt.Errorf("build aws-lambda-rie: %w", err)
	}
	dir := root
	if _, err := os.Stat(filepath.Join(root, "tools", "go.mod")); err == nil {
		dir = filepath.Join(root, "tools")
	}
	if err := goBuild(ctx, dir, out, nil, RIEPackage); err != nil {
		return "", fmt.Errorf("build aws-lambda-rie: %w", err)
	}
	return out, nil
}

// BuildFunctions builds each function for the host as
// <buildDir>/<CodeDir base>/bootstrap (go build -tags lambda.norpc), a few
// at a time, and returns the bootstrap paths by logical id.
func BuildFunctions(ctx context.Context, root, buildDir string, fns []*template.Function) (map[string]string, error) {
	paths := map[string]string{}
	errs := map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, fn := range fns {
		out := filepath.Join(buildDir, filepath.Base(fn.CodeDir), "bootstrap")
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			err := goBuild(ctx, root, out, []string{"-tags", "lambda.norpc"}, "./"+filepath.ToSlash(fn.CodeDir))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[fn.LogicalID] = err
				return
			}
			paths[fn.LogicalID] = out
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		var msgs []string
		for id, err := range errs {
			msgs = append(msgs, fmt.Sprintf("%s: %v", id, err))
		}
		sort.Strings(msgs)
		return nil, fmt.Errorf("build functions:\n%s", strings.Join(msgs, "\n"))
	}
	return paths, nil
}

func goBuild(ctx context.Context, root, out string, flags []string, pkg string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return err
	}
	args := append([]string{"build"}, flags...)
	args = append(args, "-o", abs, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
