package templatecheck_test

import (
	"slices"
	"strings"
	"testing"
)

const (
	sealingKey = "SealingKmsKey"
	// accountRoot is the key policy's principal for the account (its IAM
	// policies).
	accountRoot = "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"
	// sealingContext is the encryption context every data key is made and
	// opened with (internal/seal/kmsseal's kmsContext).
	sealingContext = `{"StringEquals":{"kms:EncryptionContext:purpose":"llmgw-token-key-sealing"}}`
)

// sealingFunctions are the functions that seal or open stored keys, and
// so the only ones that reach KMS.
var sealingFunctions = []string{"CreateTokenFunction", "RevealTokenKeyFunction", "RevealTokenKeysFunction", "RotateTokenFunction"}

// roleOf returns the logical id of the IAM role function runs as.
func (s *stack) roleOf(t *testing.T, function string) string {
	t.Helper()
	fn := s.resource(t, function, "AWS::Lambda::Function")
	role := target(fn.Properties["Role"])
	s.resource(t, role, "AWS::IAM::Role")
	return role
}

// TestSealingFunctions checks which functions are given the KMS key
// (KMS_KEY_ID): the sealing functions, and no other.
func TestSealingFunctions(t *testing.T) {
	s := translated(t)
	var got []string
	for _, fn := range s.OfType("AWS::Lambda::Function") {
		v := dig(s.Resources[fn].Properties, "Environment", "Variables", "KMS_KEY_ID")
		if v == nil {
			continue
		}
		got = append(got, fn)
		if r, _ := render(v); r != "${"+sealingKey+".Arn}" {
			t.Errorf("%s: KMS_KEY_ID = %s, want the ARN of %s", fn, jsonOf(v), sealingKey)
		}
	}
	if want := sorted(sealingFunctions); !slices.Equal(got, want) {
		t.Errorf("functions with KMS_KEY_ID = %v, want %v", got, want)
	}
}

// TestRolesHaveNoKMSStatements checks that no function role's own policy
// mentions KMS: the key policy alone grants the key's use, so that no IAM
// policy can widen it and the roles do not depend on the key.
func TestRolesHaveNoKMSStatements(t *testing.T) {
	s := translated(t)
	// The managed policies SAM attaches: logs, and X-Ray since Tracing is
	// a parameter.
	allowedManaged := []string{
		"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
		"arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
	}
	for _, role := range s.OfType("AWS::IAM::Role") {
		t.Run(role, func(t *testing.T) {
			props := s.Resources[role].Properties
			for _, arn := range stringList(props["ManagedPolicyArns"]) {
				if !slices.Contains(allowedManaged, arn) {
					t.Errorf("managed policy %s, want only %v", arn, allowedManaged)
				}
			}
			for _, pol := range asList(props["Policies"]) {
				for _, st := range asList(dig(pol, "PolicyDocument", "Statement")) {
					if dig(st, "NotAction") != nil {
						t.Errorf("statement with NotAction: %s", jsonOf(st))
					}
					for _, a := range stringList(dig(st, "Action")) {
						if iamMatch(a, "kms:Decrypt") || iamMatch(a, "kms:GenerateDataKey") || strings.HasPrefix(strings.ToLower(a), "kms:") {
							t.Errorf("statement grants %s: %s", a, jsonOf(st))
						}
					}
				}
			}
		})
	}
}

// keyGrant is who a key policy statement lets use an action, and on what
// condition.
type keyGrant struct {
	principal string
	condition any
}

// keyGrants returns, for action, every principal the sealing key's policy
// allows it (through wildcards too) with the statement's condition.
func (s *stack) keyGrants(t *testing.T, action string) []keyGrant {
	t.Helper()
	key := s.resource(t, sealingKey, "AWS::KMS::Key")
	var grants []keyGrant
	for _, st := range asList(dig(key.Properties, "KeyPolicy", "Statement")) {
		if dig(st, "Effect") != "Allow" {
			continue
		}
		if dig(st, "NotAction") != nil || dig(st, "NotPrincipal") != nil {
			t.Errorf("key policy statement with NotAction or NotPrincipal grants too much: %s", jsonOf(st))
			continue
		}
		if !slices.ContainsFunc(stringList(dig(st, "Action")), func(a string) bool { return iamMatch(a, action) }) {
			continue
		}
		var principals []string
		if p := dig(st, "Principal"); p == "*" {
			principals = []string{"*"}
		} else {
			principals = stringList(dig(p, "AWS"))
			if dig(p, "Service") != nil || dig(p, "Federated") != nil {
				t.Errorf("key policy statement with a service or federated principal: %s", jsonOf(st))
			}
		}
		for _, p := range principals {
			grants = append(grants, keyGrant{p, dig(st, "Condition")})
		}
	}
	return grants
}

// TestKeyPolicy checks who may do what with the sealing key: the account
// (its IAM policies) administers it but can neither encrypt nor decrypt,
// nor grant either; creating and rotating a token makes data keys;
// revealing and rotating opens them; both only with the service's
// encryption context.
func TestKeyPolicy(t *testing.T) {
	s := translated(t)
	role := func(fns ...string) []string {
		var arns []string
		for _, fn := range fns {
			arns = append(arns, "${"+s.roleOf(t, fn)+".Arn}")
		}
		return arns
	}
	tests := []struct {
		action string
		// who may do it; with the encryption context condition when
		// withContext.
		want        []string
		withContext bool
	}{
		{"kms:GenerateDataKey", role("CreateTokenFunction", "RotateTokenFunction"), true},
		{"kms:Decrypt", role("RevealTokenKeyFunction", "RevealTokenKeysFunction", "RotateTokenFunction"), true},
		{"kms:Encrypt", nil, false},
		{"kms:ReEncryptFrom", nil, false},
		{"kms:ReEncryptTo", nil, false},
		{"kms:GenerateDataKeyWithoutPlaintext", nil, false},
		{"kms:GenerateDataKeyPair", nil, false},
		{"kms:GenerateDataKeyPairWithoutPlaintext", nil, false},
		{"kms:CreateGrant", nil, false},
		{"kms:GenerateMac", nil, false},
		{"kms:ImportKeyMaterial", nil, false},
		// KMS refuses a key policy that would lock out whoever creates
		// the key (its lockout safety check): the account keeps
		// PutKeyPolicy, and the means to retire the key.
		{"kms:PutKeyPolicy", []string{accountRoot}, false},
		{"kms:DescribeKey", []string{accountRoot}, false},
		{"kms:ScheduleKeyDeletion", []string{accountRoot}, false},
		{"kms:DisableKey", []string{accountRoot}, false},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			grants := s.keyGrants(t, tt.action)
			var got []string
			for _, g := range grants {
				got = append(got, g.principal)
				if tt.withContext && !sameJSON(t, g.condition, sealingContext) {
					t.Errorf("%s may %s on condition %s, want %s", g.principal, tt.action, jsonOf(g.condition), sealingContext)
				}
			}
			if !slices.Equal(sorted(got), sorted(tt.want)) {
				t.Errorf("%s allowed to %v, want %v", tt.action, sorted(got), sorted(tt.want))
			}
		})
	}
}
