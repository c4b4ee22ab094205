#!/usr/bin/env bash
# Make bench/peers/langgraph/.venv: LangGraph's agent server (langgraph-cli[inmem]), pinned.
#
# It lives in a venv of its own so that LangGraph never enters the project's environment.
# Idempotent: a stamp holding the hash of requirements.txt skips the install when nothing
# changed, so running it before every benchmark costs nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
requirements="$here/requirements.txt"
stamp="$venv/.installed"
python="${PYTHON:-python3}"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/langgraph" ]]; then
    echo "==> langgraph peer: already set up ($venv)"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "==> langgraph peer: creating $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv"
fi
echo "==> langgraph peer: installing pinned langgraph-cli[inmem] (about half a minute)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
"$venv/bin/langgraph" --version >/dev/null
echo "$want" >"$stamp"
echo "==> langgraph peer: ready: $("$venv/bin/python" -m pip show langgraph-api 2>/dev/null | grep '^Version' | sed 's/Version: /langgraph-api /')"
