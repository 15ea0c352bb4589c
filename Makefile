# Shortcuts for the README's two commands (`bash scripts/demo.sh`, `bash scripts/test.sh`);
# a minimal Debian 12 has no make, so the scripts never need it.
.PHONY: install demo test

install:
	bash scripts/install.sh

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh
