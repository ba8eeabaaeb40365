"""`drbot doctor`: every credential and connection a runbook needs, checked read-only, before a
disaster needs them.

One module per system checked (kubernetes, proxmox, objectstores, ssh, iac, drift); each returns
`Line`s, green or red, a red one carrying the fix. `run.check_all` runs them all; the CLI prints
the lines, `/dr doctor` runs them as a worker job, and the scheduler's daily run feeds the red
ones to the alert state machine (`alerts`). Nothing here writes anywhere: the checks only read,
list, ask the APIs what drbot may do, and run tools in their checking modes.
"""
