# The lab's VMs. `terraform` on the lab's PATH reads the same values from lab.tf.json.
terraform {
  required_providers {
    proxmox = { source = "bpg/proxmox", version = "0.66.1" }
  }
}

# bpg/proxmox's own login (docs/index.md): drbot never passes its token to Terraform.
provider "proxmox" {
  endpoint  = var.proxmox_endpoint
  api_token = var.proxmox_api_token
}

variable "proxmox_endpoint" {
  type = string
}

variable "proxmox_api_token" {
  type      = string
  sensitive = true
}

variable "nodes" {
  type = map(object({ node_name = string, vm_id = number, memory = number }))
}

resource "proxmox_virtual_environment_vm" "k3s" {
  for_each  = var.nodes
  name      = each.key
  node_name = each.value.node_name
  vm_id     = each.value.vm_id
  memory { dedicated = each.value.memory }
  disk {
    datastore_id = "local-lvm"
    interface    = "scsi0"
    size         = 64
  }
  network_device {
    bridge = "vmbr0"
  }
}
