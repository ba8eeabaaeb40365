# The two commands of the README: `make demo` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements-dev.lock
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | cksum | cut -d' ' -f1)

.PHONY: demo test chaos mutate lint bench system-packages clean lock

# The venv. First the pinned set of $(LOCK), three pip processes at once on a third of it each:
# installing some 140 wheels is most of a fresh clone's set-up, and one pip keeps one core busy.
# Then drbot itself with its extras, which installs whatever the lock lacks or pins too old, so a
# stale lock costs time, never correctness.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	rm -rf $(VENV)/lock && mkdir $(VENV)/lock && split -n r/3 $(LOCK) $(VENV)/lock/part-
	status=0; pids=""; \
	for part in $(VENV)/lock/part-*; do \
	  $(PY) -m pip install --quiet --no-deps -r $$part & pids="$$pids $$!"; \
	done; \
	for pid in $$pids; do wait $$pid || status=1; done; \
	exit $$status
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

# $(LOCK) from a venv made from pyproject.toml alone: run it after changing the dependencies.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	{ echo "# drbot[dev] as pip resolved it: written by make lock, read by make's venv set-up"; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable; } > $(LOCK)
	rm -rf .lock-venv

# redis-server for the tests and the private Redis; sshd and ssh-keygen for the simulated lab;
# for /dr verify: PostgreSQL 15's server (a throwaway restore target), e2fsprogs and xfsprogs
# (mkfs, e2fsck, xfs_repair). etcd and barman's cloud tools come from PyPI (drbot[verify]).
# tmux for the console's terminal test.
system-packages:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	{ command -v sshd >/dev/null || test -x /usr/sbin/sshd; } || missing="$$missing openssh-server"; \
	command -v ssh >/dev/null || missing="$$missing openssh-client"; \
	test -x /usr/lib/postgresql/15/bin/postgres || missing="$$missing postgresql-15"; \
	{ command -v e2fsck >/dev/null || test -x /sbin/e2fsck; } || missing="$$missing e2fsprogs"; \
	{ command -v xfs_repair >/dev/null || test -x /sbin/xfs_repair; } || missing="$$missing xfsprogs"; \
	command -v tmux >/dev/null || missing="$$missing tmux"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing:$$missing. Install them (Debian: sudo apt-get install -y$$missing) and re-run."; exit 1; \
	  fi; \
	fi

demo: $(STAMP) system-packages
	$(PY) -m lab.demo

# The suite in parallel (one test file per pytest-xdist worker at a time; five workers on two
# cores keep the CPU busy while tests wait on servers and subprocesses), every worker writing
# the Kubernetes requests drbot made to KUBE_REQUESTS; then the ClusterRole check over all of them.
# Both always run; the target fails if either does.
KUBE_REQUESTS := .run/kube-requests
RBAC_TEST := tests/ship/test_rbac.py
# The suite starts hundreds of Python interpreters (workers, stubs, playbooks) and pytest rewrites
# every test module's asserts: let both keep their compiled bytecode (in the ignored __pycache__)
# even where the environment turns it off, or each recompiles it (4 s of CPU per pytest process).
test: export PYTHONDONTWRITEBYTECODE :=
test: $(STAMP) system-packages
	rm -rf $(KUBE_REQUESTS) && mkdir -p $(KUBE_REQUESTS)
	status=0; \
	DRBOT_KUBE_REQUESTS_DIR=$(CURDIR)/$(KUBE_REQUESTS) $(PY) -m pytest -q -p no:cacheprovider \
	  -n 5 --dist loadfile --ignore $(RBAC_TEST) || status=$$?; \
	DRBOT_KUBE_REQUESTS_DIR=$(CURDIR)/$(KUBE_REQUESTS) $(PY) -m pytest -q -p no:cacheprovider \
	  $(RBAC_TEST) || status=$$?; \
	exit $$status

# The whole fault-injection matrix (`make test` runs its fast cases): each case kills the worker
# right after one effect of a runbook, retries on a new worker and checks the runbook's invariants.
CHAOS_RESULTS := .run/chaos-results.jsonl
chaos: $(STAMP) system-packages
	mkdir -p .run && rm -f $(CHAOS_RESULTS)
	status=0; \
	DRBOT_CHAOS_RESULTS=$(CURDIR)/$(CHAOS_RESULTS) $(PY) -m pytest -q -p no:cacheprovider \
	  -n 2 --dist load --chaos tests/chaos || status=$$?; \
	$(PY) -m tests.chaos.table $(CHAOS_RESULTS); \
	exit $$status

# Mutation testing of the safety-critical modules ([tool.mutmut] in pyproject.toml) against their
# fast tests; fails below a 90 % kill rate and lists the survivors.
mutate: $(STAMP) system-packages
	rm -rf mutants
	$(VENV)/bin/mutmut run >/dev/null || true
	$(PY) tests/mutation_score.py $(VENV)/bin/mutmut

lint: $(STAMP)
	$(VENV)/bin/ruff check bot handlers adapters tests bench lab

# Each prints a table of figures beside its floor; the two backup benchmarks take a quarter hour.
bench: $(STAMP) system-packages
	$(PY) bench/submit_latency.py
	$(PY) bench/slack_ack.py
	$(PY) bench/recovery_time.py
	$(PY) bench/bot_memory.py
	$(PY) bench/backup_scan.py
	$(PY) bench/backup_check.py
	$(PY) bench/shutdown.py
	$(PY) bench/lab_start.py

clean:
	rm -rf $(VENV) .lab .pytest_cache .lock-venv
