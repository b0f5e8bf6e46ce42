# The two commands of the README. Each builds its own virtual environment on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
NOTEBOOKS := $(sort $(wildcard Part-A/*.ipynb)) $(sort $(wildcard Part-B/*.ipynb))
# Seconds one notebook cell may run under `make run`; -1 = no limit (a real 30-run sweep is one long cell).
CELL_TIMEOUT ?= -1
# Unit tests, and every notebook run alone and in order (tests/test_notebooks_*.py); --dist loadfile
# puts the two notebook files on different workers.
PYTEST_ARGS ?= tests -n 2 --dist loadfile -p no:cacheprovider

.PHONY: run test bench clean gpu-check publish

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq -r requirements.txt
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

## run: print the full sweep's time estimate, execute every notebook in order (real data if found, else the demo
## set) into outputs/, then write the report: outputs/report.html, and the W&B report too when a W&B key is found
run: $(BIN)/.installed
	@mkdir -p outputs
	@echo "=== the full sweep's estimated time on this machine (Part-A/02 prints its own before it starts)"
	@$(BIN)/python -m shared estimate >/dev/null
	@set -e; for nb in $(NOTEBOOKS); do \
		echo "=== $$nb"; \
		start=$$(date +%s); \
		$(BIN)/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=$(CELL_TIMEOUT) \
			--ExecutePreprocessor.kernel_name=python3 --output-dir outputs/$$(dirname $$nb) "$$nb"; \
		echo "    $$(( $$(date +%s) - start )) s"; \
	done
	@echo "Executed notebooks are in outputs/Part-A and outputs/Part-B."
	@echo "=== the report (W&B with a key; outputs/report.html always)"
	$(BIN)/python -m shared report

## test: unit tests and every notebook under nbval in quick mode
test: $(BIN)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## bench: engine vs typical pipeline on the data find_data() picks
bench: $(BIN)/.installed
	$(BIN)/python -m benchmarks.bench

## publish: write the origin remote's GitHub address into the setup cells, README links and notebooks' Colab links
## (text only: the system python3 and its standard library, no virtual environment and no torch download)
publish:
	$(PYTHON) -m tools.publish

clean:
	rm -rf outputs data/cache

## gpu-check: on a lent GPU, one call inside BUDGET seconds: GPU tests, cache-build rates, bench beside the
## reference loop (REFERENCE=path/reference_loop.py), a timed 10-run sweep -> $(GPU_CHECK_OUT)/gpu_check.json.
## No install step: a GPU machine that cannot reach pip runs it with its own python3 (wandb and sweeps carried as wheels).
GPU_CHECK_OUT ?= $(or $(OUT),outputs/gpu-check)
BUDGET ?= 480
gpu-check:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) -m benchmarks.gpu_check --out $(GPU_CHECK_OUT) \
		--budget-seconds $(BUDGET) $(if $(REFERENCE),--reference $(REFERENCE))
