#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need when it is missing
# (Debian packages, PostgreSQL, a venv with hazwatch and its camera, demo, llrp and dev extras),
# then runs ruff (lint + format), mypy and pytest. Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. Debian packages: the brokers and stores the integration tests start on their own ports.
missing=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
command -v mosquitto_passwd >/dev/null || missing+=(mosquitto)
command -v influxd >/dev/null || missing+=(influxdb)
command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
command -v chromium >/dev/null || missing+=(chromium)
# the browser tests' screenshots show Chinese: without a CJK font they would show boxes
fc-list :lang=zh 2>/dev/null | grep -q . || missing+=(fonts-noto-cjk)
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v python3 >/dev/null || missing+=(python3 python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian's package starts a system mosquitto/influxd where it can; tests use their own ports.

# 2. PostgreSQL on 127.0.0.1:5432 with a `test` database, trust auth for local TCP.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    hba=/etc/postgresql/$version/main/pg_hba.conf
    if ! grep -q "hazwatch tests" "$hba"; then
        as_root sed -i "1i host all all 127.0.0.1/32 trust  # hazwatch tests" "$hba"
    fi
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
if ! psql -h 127.0.0.1 -U postgres -d test -c "select 1" >/dev/null 2>&1; then
    as_root su postgres -c "createdb test" 2>/dev/null || true
fi

# 3. Python: a venv with hazwatch, its extras (the camera agent, the demo's broker, the LLRP
# connector) and dev tools.
py=""
for candidate in python3 python3.13 python3.12 python3.11; do
    # a pyenv shim may exist for a version that is not selected: run it to be sure
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        py=$candidate; break
    fi
done
[ -n "$py" ] || { echo "hazwatch needs Python >= 3.11 (apt-get install python3)"; exit 1; }
if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e ".[dev,camera,demo,llrp]" 2>&1 | grep -v -i "warning" || true
.venv/bin/python -c "import hazwatch, paho.mqtt, influxdb_client, cv2, amqtt, llrpkit" # fail here if the install did

# 4. Checks and tests.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
