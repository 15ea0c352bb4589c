# The two set-up commands of the README: `make demo` and `make test`.
.PHONY: install demo test

install:
	bash scripts/install.sh

demo: install
	bash scripts/demo.sh

test: install
	bash scripts/test.sh
