"""/dr readiness: if a disaster of each scenario happened now, could drbot run its runbook, what
would be lost (RPO per object) and how long would it take (RTO per scenario)?"""
