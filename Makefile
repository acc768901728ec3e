# One-line shims over `cargo xtask`, which holds all the logic.
# Variables: VARIANT (one variant), ARGS (anything else for the xtask command).
VARIANT_FLAG = $(if $(VARIANT),--variant $(VARIANT))

.PHONY: help ci-image release-image verify prune-ci-images stand-ins lint test

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

ci-image: ## Build CI images (VARIANT=name for one; ARGS=--push ...)
	cargo xtask ci-image $(VARIANT_FLAG) $(ARGS)

release-image: ## Build, push, sign and attest production images (ARGS=--registry ...)
	cargo xtask release-image $(VARIANT_FLAG) $(ARGS)

verify: ## Deploy gate: IMAGE=ref ARGS=--key cosign.pub
	cargo xtask verify $(IMAGE) $(ARGS)

prune-ci-images: ## Delete expired ci- images (ARGS=--registry REG/NAME --older-than 7d)
	cargo xtask prune-ci-images $(ARGS)

stand-ins: ## Build offline stand-in bases and host binaries into a local registry
	cargo xtask stand-ins $(ARGS)

lint: ## Run every linter
	cargo xtask lint $(ARGS)

test: ## Run the whole test suite
	cargo xtask test $(ARGS)
