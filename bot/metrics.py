"""Prometheus metrics. Each process exposes its own on /metrics (see bot.chat.health)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

COMMANDS = Counter("drbot_commands_total", "Commands received, by command and outcome",
                   ["command", "outcome"])
JOBS = Counter("drbot_jobs_total", "Jobs ended, by command and status", ["command", "status"])
JOB_SECONDS = Histogram("drbot_job_duration_seconds", "Time from start to end of a job run",
                        ["command"], buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 7200))
QUEUE_DEPTH = Gauge("drbot_queue_depth", "Jobs waiting in the rq queue")
APPROVALS_PENDING = Gauge("drbot_approvals_pending", "Jobs awaiting approval")
RELAY_LAG = Histogram("drbot_relay_lag_seconds", "Event written → delivered to the frontend",
                      buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
BACKUP_AGE = Gauge("drbot_backup_age_seconds", "Age of the newest good backup", ["kind", "name"])
BACKUP_STATE = Gauge("drbot_backup_ok", "1 when the object's backups meet policy, else 0",
                     ["kind", "name"])
