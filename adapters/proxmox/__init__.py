"""Proxmox VE: find, stop and destroy VMs and wait on their tasks, through the PVE API (proxmoxer).

- ``client``: the settings (``ProxmoxConfig``) and the transport, with endpoint failover;
- ``errors``: vendor exceptions and PVE answers translated into ``adapters.errors``;
- ``tasks``: waiting on a task's UPID and reading its log;
- ``vms``: ``Proxmox``, the class drbot uses, and the ``VM``/``PveNode`` it returns.

Nothing is re-exported here, and importing the package loads neither proxmoxer nor requests.
"""
