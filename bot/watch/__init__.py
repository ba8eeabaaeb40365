"""The backup watch: checks every backup against policy and speaks up only when that changes.

facts.py reads both sides, evaluate.py judges (pure), alert_states.py keeps the state machine in Redis,
check.py runs one check, scheduler.py enqueues it once per interval, notify.py posts the alerts,
gauges.py exposes the latest findings. See docs/backups.md.
"""
