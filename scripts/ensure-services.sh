#!/usr/bin/env bash
# Starts the services palier's tests talk to, if they are down, and waits until they
# answer: PostgreSQL at 127.0.0.1:5432 and NATS with JetStream at 127.0.0.1:4222.
# Idempotent: a running service is left alone.
set -euo pipefail

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
pg_isready -h 127.0.0.1 -p 5432 -q || { echo "PostgreSQL does not answer at 127.0.0.1:5432" >&2; exit 1; }

nats_up() { (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; }
if ! nats_up; then
  echo "starting NATS (JetStream)"
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
fi
for _ in $(seq 1 30); do nats_up && break; sleep 1; done
nats_up || { echo "NATS does not answer at 127.0.0.1:4222" >&2; exit 1; }
