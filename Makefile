test:
	scripts/test.sh
.PHONY: test
