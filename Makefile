# Two commands: `make run` (serve on :9504 with demo data) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
IM_PORT ?= 9504
IM_BIND ?= 127.0.0.1

.PHONY: install run test migrate clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-runtime.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

migrate: install
	$(BIN)/python manage.py migrate --noinput

# A development server: DEBUG on, secrets generated once into var/ (production sets them: README).
run: export DJANGO_DEBUG ?= 1
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seeddemo
	$(BIN)/python -m imchat.serve -b $(IM_BIND) -p $(IM_PORT) --websocket_timeout -1 imchat.asgi:application

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) var
