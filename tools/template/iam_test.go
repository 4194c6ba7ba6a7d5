package template_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llmgw/token-service/tools/template"
)

// Each function of the project's template gets exactly the DynamoDB
// actions its code calls; the local runner enforces them.
func TestProjectDynamoDBActions(t *testing.T) {
	s := loadProject(t)
	tests := []struct {
		function string
		want     []string
	}{
		{"GetTokenFunction", []string{"dynamodb:GetItem"}},
		{"ListTokensFunction", []string{"dynamodb:Query"}},
		{"ConsoleFunction", nil},
	}
	for _, tt := range tests {
		t.Run(tt.function, func(t *testing.T) {
			fn := s.Functions[tt.function]
			if fn == nil {
				t.Skipf("no %s in the template", tt.function)
			}
			if !slices.Equal(fn.DynamoDBActions, tt.want) {
				t.Errorf("DynamoDBActions = %v, want %v", fn.DynamoDBActions, tt.want)
			}
		})
	}
	table := template.TableARN("tokens")
	get := s.Functions["GetTokenFunction"]
	for _, tc := range []struct {
		action, resource string
		want             bool
	}{
		{"dynamodb:GetItem", table, true},
		{"dynamodb:getitem", table, true},
		{"dynamodb:PutItem", table, false},
		{"dynamodb:BatchGetItem", table, false},
		{"dynamodb:GetItem", template.TableARN("other"), false},
		{"dynamodb:GetItem", table + "/index/by-name", false},
	} {
		if got, _ := get.DynamoDBAllowed(tc.action, tc.resource); got != tc.want {
			t.Errorf("GetTokenFunction allowed %s on %s = %v, want %v", tc.action, tc.resource, got, tc.want)
		}
	}
}

// Policy forms: inline statements with wildcards, !If branches, SAM
// policy templates, !Sub index resources, Deny, and loud failures.
func TestDynamoDBPolicies(t *testing.T) {
	const head = `
Transform: AWS::Serverless-2016-10-31
Conditions:
  On: !Equals ["a", "a"]
Resources:
  T:
    Type: AWS::DynamoDB::Table
    Properties:
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
  K:
    Type: AWS::KMS::Key
  F:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Runtime: provided.al2023
      Handler: bootstrap
      Policies:
`
	table := template.TableARN("t1")
	tests := []struct {
		name     string
		policies string
		wantErr  bool
		allowed  []string // action@resource ("" resource = the table)
		denied   []string
	}{
		{
			name: "wildcards and list",
			policies: `
        - Statement:
            - Effect: Allow
              Action: [dynamodb:Get*, "dynamodb:Query"]
              Resource: !GetAtt T.Arn
            - Effect: Allow
              Action: kms:Decrypt
              Resource: !GetAtt K.Arn`,
			allowed: []string{"dynamodb:GetItem", "dynamodb:Query"},
			denied:  []string{"dynamodb:PutItem", "dynamodb:BatchGetItem"},
		},
		{
			name: "if branches and index sub",
			policies: `
        - !If
          - On
          - Statement:
              - Effect: Allow
                Action: dynamodb:Query
                Resource: !Sub "${T.Arn}/index/*"
          - !Ref AWS::NoValue`,
			allowed: []string{"dynamodb:Query@" + table + "/index/by-name"},
			denied:  []string{"dynamodb:Query"},
		},
		{
			name:     "sam read policy",
			policies: "\n        - DynamoDBReadPolicy: {TableName: !Ref T}\n        - AWSLambdaBasicExecutionRole",
			allowed:  []string{"dynamodb:GetItem", "dynamodb:Scan", "dynamodb:Query@" + table + "/index/x"},
			denied:   []string{"dynamodb:PutItem", "dynamodb:DeleteItem"},
		},
		{
			name:     "sam crud policy",
			policies: "\n        - DynamoDBCrudPolicy:\n            TableName: !Ref T",
			allowed:  []string{"dynamodb:PutItem", "dynamodb:ConditionCheckItem"},
			denied:   []string{"dynamodb:TransactWriteItems", "dynamodb:DeleteTable"},
		},
		{
			name: "star and deny",
			policies: `
        - Statement:
            - Effect: Allow
              Action: dynamodb:*
              Resource: "*"
            - Effect: Deny
              Action: dynamodb:DeleteItem
              Resource: !Sub arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${T}`,
			allowed: []string{"dynamodb:PutItem", "dynamodb:ListTables@*"},
			denied:  []string{"dynamodb:DeleteItem"},
		},
		{name: "unknown managed policy", policies: "\n        - AmazonDynamoDBFullAccess", wantErr: true},
		{name: "unsupported sam template", policies: "\n        - DynamoDBStreamReadPolicy: {TableName: !Ref T, StreamName: s}", wantErr: true},
		{name: "condition on dynamodb", policies: `
        - Statement:
            - Effect: Allow
              Action: dynamodb:GetItem
              Resource: "*"
              Condition: {StringEquals: {a: b}}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "template.yaml")
			if err := os.WriteFile(path, []byte(head+tt.policies[1:]+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := template.Load(path, template.Options{TableNames: map[string]string{"T": "t1"}})
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Load succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fn := s.Functions["F"]
			check := func(spec string, want bool) {
				action, resource, ok := strings.Cut(spec, "@")
				if !ok {
					resource = table
				}
				if got, _ := fn.DynamoDBAllowed(action, resource); got != want {
					t.Errorf("allowed %s on %s = %v, want %v (statements %+v)", action, resource, got, want, fn.DynamoDBStatements)
				}
			}
			for _, a := range tt.allowed {
				check(a, true)
			}
			for _, d := range tt.denied {
				check(d, false)
			}
		})
	}
}
