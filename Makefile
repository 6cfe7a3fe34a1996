# Thin entry points; the work is in scripts/. Every target installs what is missing first.
#   make up        build, start a hub + local agent, print the dashboard URL and admin token path
#   make test      the whole suite: debug build, fuzzers, ASan+UBSan build (what CI runs)
#   make bench     benchmarks side by side with peers (not tests)
#   make images    local Docker images for container terminals
#   make deb       rexec-hub and rexec-agent .deb packages in build/deb/ (a packager's plain Release build)
#   make fuzz SECONDS=N   run each fuzzer N seconds
#   make down      stop what make up started
#   make clean
SHELL := /bin/bash
SECONDS ?= 60

.PHONY: deps up down test bench images deb fuzz clean

deps:
	@scripts/install-deps.sh

up: deps
	@scripts/up.sh

down:
	@scripts/down.sh

test: deps
	@scripts/test.sh

bench: deps
	@scripts/bench.sh

images: deps
	@scripts/build-images.sh

deb: deps
	@scripts/deb.sh

fuzz: deps
	@scripts/fuzz.sh $(SECONDS)

clean:
	rm -rf build
