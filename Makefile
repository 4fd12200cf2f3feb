# Aliases for ./dev, which does the work (and installs what is missing on a fresh machine).
.PHONY: demo test bench clean

demo:
	./dev demo

test:
	./dev test

bench:
	./dev bench

clean:
	rm -rf .venv demo-state .pytest_cache .mypy_cache .ruff_cache
