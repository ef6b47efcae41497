// PM2 ecosystem: the gateway and a local Prometheus, without Docker.
//
//   pm2 start monitoring/ecosystem.config.js     (from anywhere)
//   pm2 logs / pm2 status / pm2 stop monitoring/ecosystem.config.js / pm2 delete ...
//
// The gateway runs `gunicorn -c gunicorn.conf.py wsgi:app` from the repository
// root; Prometheus runs through monitoring/prometheus/start-prometheus.sh, the
// same start script the docker compose and run-local.sh paths use, so the
// scrape settings and rules are written once (monitoring/prometheus/).
//
// Everything is configured from the environment of the `pm2 start` command.
// That environment is handed to both apps explicitly, because PM2 apps would
// otherwise inherit the environment of the PM2 daemon, which may have been
// started earlier with other values. Useful variables:
//   METRICS_PORT               the gateway's metrics listener, and what Prometheus scrapes (default 4001)
//   METRICS_TOKEN              the metrics bearer token, for both (default: none, /metrics open)
//   GATEWAY_METRICS_TARGET     host:port Prometheus scrapes instead of 127.0.0.1:$METRICS_PORT
//   PROMETHEUS_BIN             the Prometheus binary (default: prometheus on PATH, e.g. Debian's package)
//   PROMETHEUS_LISTEN_ADDRESS  default 127.0.0.1:9090
//   PROMETHEUS_DATA_DIR        default monitoring/.local/prometheus-data
//   PROMETHEUS_RUNTIME_DIR     default monitoring/.local/prometheus-runtime
//   GUNICORN_BIN               the gunicorn executable (default: .venv/bin/gunicorn if present, else gunicorn on PATH)
//   PM2_APP_PREFIX             prefix of the two PM2 app names (default ai-chat-)
//   GATEWAY_ENV_FILE           a KEY=value file (mode 0600) with the secrets, read at each start
// plus whatever the gateway itself reads (its port, provider settings, ...).
//
// Secrets never go through PM2's environment: `pm2 save` writes each app's environment into
// $PM2_HOME/dump.pm2, readable by anyone who can read that directory. Both apps start through
// with-env-file.sh, which exports GATEWAY_ENV_FILE's variables, so PM2 only holds the file's name.
// A secret in the environment of `pm2 start` is refused with a message saying so.
'use strict';

const fs = require('fs');
const path = require('path');

const repoRoot = path.resolve(__dirname, '..');
const env = { ...process.env };
const prefix = env.PM2_APP_PREFIX || 'ai-chat-';
// The README's virtualenv when there is one, else gunicorn on PATH.
const venvGunicorn = path.join(repoRoot, '.venv', 'bin', 'gunicorn');
const gunicorn = env.GUNICORN_BIN || (fs.existsSync(venvGunicorn) ? venvGunicorn : 'gunicorn');
const withEnvFile = path.join(__dirname, 'with-env-file.sh');

const SECRETS = ['JWT_SECRET_KEY', 'METRICS_TOKEN', 'OPENAI_API_KEY'];
// URLs are secrets only when they carry a password (postgresql://user:password@host/db).
const URLS = ['DATABASE_URL', 'RATE_LIMIT_STORAGE_URI'];
const exposed = SECRETS.filter((name) => env[name])
  .concat(URLS.filter((name) => /:\/\/[^/@]*:[^/@]*@/.test(env[name] || '')));
if (exposed.length) {
  throw new Error(`${exposed.join(', ')} must not be in the environment of pm2 start: pm2 save would write `
    + 'it into dump.pm2. Put it in a file (mode 0600) and name it with GATEWAY_ENV_FILE.');
}

module.exports = {
  apps: [
    {
      name: `${prefix}gateway`,
      cwd: repoRoot,
      script: withEnvFile,
      args: [gunicorn, '-c', 'gunicorn.conf.py', 'wsgi:app'],
      interpreter: 'none',
      exec_mode: 'fork',
      instances: 1, // gunicorn forks its own workers
      autorestart: true,
      // gunicorn stops gracefully on SIGTERM (SIGINT, PM2's default, is its quick shutdown).
      kill_signal: 'SIGTERM',
      // It drains first: DRAIN_DELAY_SECONDS + GUNICORN_GRACEFUL_TIMEOUT + 5 (37 s by default).
      kill_timeout: 45000,
      env,
    },
    {
      name: `${prefix}prometheus`,
      cwd: repoRoot,
      script: withEnvFile,
      args: [path.join(__dirname, 'prometheus', 'start-prometheus.sh')],
      interpreter: 'none',
      exec_mode: 'fork',
      instances: 1,
      autorestart: true,
      kill_signal: 'SIGTERM',
      kill_timeout: 30000,
      env,
    },
  ],
};
