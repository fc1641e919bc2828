.PHONY: setup test lint demo bench
setup:
	./scripts/setup.sh
test:
	./scripts/test.sh
lint:
	.venv/bin/ruff check src tests bench && .venv/bin/mypy
demo:
	./scripts/demo.sh
bench:
	.venv/bin/python bench/bench_token_verify.py
